//! The shutdown signal: SIGTERM or SIGINT flips it once, every task watching
//! it stops taking new work and finishes (or abandons) what it holds.

use tokio::sync::watch;

/// A cloneable view of whether shutdown was requested.
#[derive(Clone)]
pub struct Shutdown {
    rx: watch::Receiver<bool>,
}

/// The side that requests shutdown.
pub struct ShutdownTrigger {
    tx: watch::Sender<bool>,
}

/// A new, not yet triggered, signal.
pub fn channel() -> (ShutdownTrigger, Shutdown) {
    let (tx, rx) = watch::channel(false);
    (ShutdownTrigger { tx }, Shutdown { rx })
}

impl ShutdownTrigger {
    pub fn trigger(&self) {
        self.tx.send_replace(true);
    }

    /// Installs the SIGTERM and SIGINT handlers now; the returned future
    /// triggers shutdown on the first of them and says which it was.
    pub fn on_signal(self) -> std::io::Result<impl Future<Output = &'static str>> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        Ok(async move {
            let name = tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
            };
            self.trigger();
            name
        })
    }
}

impl Shutdown {
    pub fn is_requested(&self) -> bool {
        *self.rx.borrow()
    }

    /// Resolves once shutdown is requested (at once if it already was).
    pub async fn requested(&self) {
        let mut rx = self.rx.clone();
        // An error means the trigger is gone, which only happens at exit.
        let _ = rx.wait_for(|&stop| stop).await;
    }
}
