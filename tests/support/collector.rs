//! A stand-in OpenTelemetry collector: an HTTP listener on a free local
//! port that answers every request 200 and hands it to the test.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

/// One request as the collector received it.
#[derive(Debug)]
pub struct Request {
    /// `POST /v1/traces`, say.
    pub line: String,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The listener's URL (`http://127.0.0.1:PORT`) and its requests. It runs
/// on a thread of its own until the test process ends.
pub struct Collector {
    pub url: String,
    requests: Receiver<Request>,
}

impl Collector {
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind collector");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let (sender, requests) = channel();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let Some(request) = read_request(&mut stream) else {
                    continue;
                };
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
                if sender.send(request).is_err() {
                    return;
                }
            }
        });
        Collector { url, requests }
    }

    /// The first request received within `timeout` for which `wanted`
    /// holds; panics otherwise.
    pub fn wait_for(&self, timeout: Duration, wanted: impl Fn(&Request) -> bool) -> Request {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.requests.recv_timeout(left) {
                Ok(request) if wanted(&request) => return request,
                Ok(_) => {}
                Err(_) => panic!("no matching request within {timeout:?}"),
            }
        }
    }
}

fn read_request(stream: &mut std::net::TcpStream) -> Option<Request> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut headers = Vec::new();
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).ok()?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':')?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
    }
    let length = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(Request {
        line: line.trim_end().to_owned(),
        headers,
        body,
    })
}
