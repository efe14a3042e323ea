//! Log capture: a tracing subscriber that keeps every line in memory, for
//! tests that check what the service logs.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use tracing::subscriber::{DefaultGuard, NoSubscriber};
use tracing::Dispatch;

/// Log lines kept in memory.
#[derive(Clone, Default)]
pub struct CapturedLogs(Arc<Mutex<Vec<u8>>>);

impl CapturedLogs {
    /// Sends every event of every crate, at every level, on this thread to
    /// the buffer until the guard is dropped.
    pub fn capture(&self) -> DefaultGuard {
        keep_a_second_dispatcher();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(self.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::set_default(subscriber)
    }

    /// Returns what was logged so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// Registers a second dispatcher that lives as long as the test process.
///
/// tracing-core caches, per call site, whether any dispatcher wants its
/// events. While only one dispatcher is registered, it uses the choice of
/// the default dispatcher of the thread that reaches the call site first.
/// When that is a parallel test's thread without a subscriber, the call
/// site is muted for every thread, the capturing one included. With two or
/// more dispatchers registered, tracing-core combines the choices of all.
fn keep_a_second_dispatcher() {
    static SECOND: OnceLock<Dispatch> = OnceLock::new();
    SECOND.get_or_init(|| Dispatch::new(NoSubscriber::default()));
}

impl Write for CapturedLogs {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for CapturedLogs {
    type Writer = CapturedLogs;

    fn make_writer(&'a self) -> CapturedLogs {
        self.clone()
    }
}
