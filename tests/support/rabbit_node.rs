//! A RabbitMQ node of a test's own, for tests that stop the broker or raise
//! its alarms: started like `scripts/servers.sh` starts one (own node name,
//! ports, epmd, HOME with its Erlang cookie, data and log directories), from
//! the scripts in `OUTBOX_TEST_RABBITMQ_BIN` (default /usr/lib/rabbitmq/bin).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::certs::{CertFiles, Pki, ServerCert};
use super::{free_port, sigterm, unique};

/// A running private node; stopped and its files deleted on drop.
pub struct RabbitNode {
    /// `amqp://guest:guest@127.0.0.1:PORT/%2f`.
    pub url: String,
    /// The TLS listener's port, for nodes from [`RabbitNode::start_tls`].
    pub tls_port: Option<u16>,
    env: NodeEnv,
    server: Child,
    epmd: Child,
}

/// What makes a node private: its name, ports and directory, handed to
/// the server and to every rabbitmqctl as environment variables.
struct NodeEnv {
    name: String,
    port: u16,
    dist_port: u16,
    epmd_port: u16,
    dir: tempfile::TempDir,
}

fn rabbitmq_bin(name: &str) -> PathBuf {
    let dir = std::env::var("OUTBOX_TEST_RABBITMQ_BIN")
        .unwrap_or_else(|_| "/usr/lib/rabbitmq/bin".to_owned());
    Path::new(&dir).join(name)
}

impl RabbitNode {
    /// Starts a node and waits until it accepts AMQP connections (about
    /// 5-10 s on 2 cores).
    pub fn start() -> Self {
        Self::start_with(None, &[])
    }

    /// A node that also listens for amqps on [`RabbitNode::tls_port`] with
    /// `pki`'s good server certificate, asks for (but does not require) a
    /// client certificate signed by `pki`'s CA, and offers EXTERNAL
    /// (rabbitmq_auth_mechanism_ssl), taking the user name from the
    /// certificate's common name.
    pub fn start_tls(pki: &Pki) -> Self {
        Self::start_with(Some(pki), &["tlsv1.3", "tlsv1.2"])
    }

    /// [`RabbitNode::start_tls`] offering only these TLS versions (`tlsv1.2`).
    pub fn start_tls_versions(pki: &Pki, versions: &[&str]) -> Self {
        Self::start_with(Some(pki), versions)
    }

    fn start_with(pki: Option<&Pki>, versions: &[&str]) -> Self {
        let started = Instant::now();
        let dir = tempfile::Builder::new()
            .prefix("outbox_test_rabbit")
            .tempdir()
            .expect("node dir");
        let path = dir.path();
        std::fs::create_dir_all(path.join("home")).expect("home");
        std::fs::write(path.join("rabbitmq-env.conf"), "").expect("env file");
        let port = free_port();
        let mut conf = format!("listeners.tcp.default = 127.0.0.1:{port}\n");
        let mut plugins = "[].\n";
        let tls_port = pki.map(|pki| {
            let tls_port = free_port();
            let server = pki.server(ServerCert::Good);
            std::fs::copy(&server.cert, path.join("server.pem")).expect("server cert");
            std::fs::copy(&server.key, path.join("server.key")).expect("server key");
            conf.push_str(&format!(
                "listeners.ssl.default = 127.0.0.1:{tls_port}\n\
                 ssl_options.cacertfile = {ca}\n\
                 ssl_options.certfile = {dir}/server.pem\n\
                 ssl_options.keyfile = {dir}/server.key\n\
                 ssl_options.verify = verify_peer\n\
                 ssl_options.fail_if_no_peer_cert = false\n\
                 auth_mechanisms.1 = PLAIN\n\
                 auth_mechanisms.2 = AMQPLAIN\n\
                 auth_mechanisms.3 = EXTERNAL\n\
                 ssl_cert_login_from = common_name\n",
                ca = pki.ca().display(),
                dir = path.display(),
            ));
            for (i, version) in versions.iter().enumerate() {
                conf.push_str(&format!("ssl_options.versions.{} = {version}\n", i + 1));
            }
            plugins = "[rabbitmq_auth_mechanism_ssl].\n";
            tls_port
        });
        std::fs::write(path.join("enabled_plugins"), plugins).expect("plugins file");
        std::fs::write(path.join("rabbitmq.conf"), conf).expect("config file");
        let env = NodeEnv {
            name: format!("{}@localhost", unique("outbox_test_rabbit")),
            port,
            dist_port: free_port(),
            epmd_port: free_port(),
            dir,
        };
        let epmd = Command::new("epmd")
            .args(["-port", &env.epmd_port.to_string(), "-address", "127.0.0.1"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting epmd");
        let log = std::fs::File::create(env.dir.path().join("stdout.log")).expect("log file");
        let server = env
            .command(&rabbitmq_bin("rabbitmq-server"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("starting rabbitmq-server");
        let node = RabbitNode {
            url: format!("amqp://guest:guest@127.0.0.1:{port}/%2f"),
            tls_port,
            env,
            server,
            epmd,
        };
        let pid_file = node.env.pid_file().display().to_string();
        node.ctl(&["wait", "--timeout", "110", &pid_file]);
        println!(
            "private RabbitMQ node {} on 127.0.0.1:{port} started in {:.1?}",
            node.env.name,
            started.elapsed()
        );
        node
    }

    /// Runs `rabbitmqctl -n <node>` with the node's environment, panicking
    /// with its output if it fails; returns stdout.
    pub fn ctl(&self, args: &[&str]) -> String {
        let out = self.env.ctl(args).output().expect("running rabbitmqctl");
        assert!(
            out.status.success(),
            "rabbitmqctl {args:?} on {} failed: {}{}",
            self.env.name,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `amqps://USERINFO@HOST:TLS_PORT/%2f` (`userinfo` may be empty).
    pub fn amqps_url(&self, userinfo: &str, host: &str) -> String {
        let port = self.tls_port.expect("a node started with start_tls");
        let at = if userinfo.is_empty() { "" } else { "@" };
        format!("amqps://{userinfo}{at}{host}:{port}/%2f")
    }

    /// Presents another server certificate to new TLS connections from
    /// now on (the files are replaced and Erlang's PEM cache cleared).
    pub fn present(&self, files: &CertFiles) {
        let dir = self.env.dir.path();
        std::fs::copy(&files.cert, dir.join("server.pem")).expect("server cert");
        std::fs::copy(&files.key, dir.join("server.key")).expect("server key");
        self.ctl(&["eval", "ssl:clear_pem_cache()."]);
    }

    /// Stops the broker application until the returned guard drops.
    pub fn outage(&self) -> BrokerOutage<'_> {
        BrokerOutage::begin(self)
    }
}

impl NodeEnv {
    fn pid_file(&self) -> PathBuf {
        self.dir.path().join("pid")
    }

    /// `rabbitmqctl -q -n <node> ARGS`.
    fn ctl(&self, args: &[&str]) -> Command {
        let mut command = self.command(&rabbitmq_bin("rabbitmqctl"));
        command.args(["-q", "-n", &self.name]).args(args);
        command
    }

    /// A command with this node's environment, and nothing of the
    /// machine's node (its env file, cookie, epmd).
    fn command(&self, program: &Path) -> Command {
        let dir = self.dir.path();
        let mut command = Command::new(program);
        command
            .env("HOME", dir.join("home"))
            .env("RABBITMQ_NODENAME", &self.name)
            .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
            .env("RABBITMQ_NODE_PORT", self.port.to_string())
            .env("RABBITMQ_DIST_PORT", self.dist_port.to_string())
            .env("RABBITMQ_MNESIA_BASE", dir.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", dir.join("log"))
            .env("RABBITMQ_PID_FILE", self.pid_file())
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", dir.join("enabled_plugins"))
            .env("RABBITMQ_CONFIG_FILE", dir.join("rabbitmq.conf"))
            .env("RABBITMQ_ADVANCED_CONFIG_FILE", dir.join("advanced.config"))
            .env("RABBITMQ_CONF_ENV_FILE", dir.join("rabbitmq-env.conf"))
            // rabbitmqctl's own distribution port: any free one.
            .env("RABBITMQ_CTL_DIST_PORT_MIN", "0")
            .env("RABBITMQ_CTL_DIST_PORT_MAX", "0")
            .env("ERL_EPMD_PORT", self.epmd_port.to_string())
            .env("ERL_EPMD_ADDRESS", "127.0.0.1")
            .env("ERL_FLAGS", "-kernel inet_dist_use_interface {127,0,0,1}");
        command
    }
}

impl Drop for RabbitNode {
    fn drop(&mut self) {
        // The rabbitmq-server script stops the VM it started on SIGTERM.
        sigterm(self.server.id());
        let deadline = Instant::now() + Duration::from_secs(15);
        while !matches!(self.server.try_wait(), Ok(Some(_))) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        if let Ok(pid) = std::fs::read_to_string(self.env.pid_file()) {
            let _ = Command::new("kill").args(["-KILL", pid.trim()]).output();
        }
        let _ = self.server.kill();
        let _ = self.server.wait();
        let _ = self.epmd.kill();
        let _ = self.epmd.wait();
    }
}

/// Stops the node's broker application; starts it again when dropped, even
/// if the test panics.
pub struct BrokerOutage<'a> {
    node: &'a RabbitNode,
}

impl<'a> BrokerOutage<'a> {
    pub fn begin(node: &'a RabbitNode) -> Self {
        node.ctl(&["stop_app"]);
        BrokerOutage { node }
    }
}

impl Drop for BrokerOutage<'_> {
    fn drop(&mut self) {
        let _ = self.node.env.ctl(&["start_app"]).output();
        let _ = self.node.env.ctl(&["await_startup"]).output();
    }
}
