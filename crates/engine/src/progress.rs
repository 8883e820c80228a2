//! How work is told as it goes.

/// Hears how work goes: the steps of each certificate's request, each one's outcome, and
/// warnings. The CLI shows them as spinners or lines, the hub logs them or records them as
/// a job's steps.
pub trait Progress: Send + Sync {
    /// The certificates a run over several is about to work on.
    fn begin(&self, _certs: &[String]) {}

    /// A step of certificate `cert`'s work, e.g. "validating www.example.com with http-01".
    fn step(&self, cert: &str, message: &str);

    /// The outcome of certificate `cert` in a run over several ("renewed: serial …").
    fn finish(&self, cert: &str, message: &str) {
        self.step(cert, message);
    }

    /// Something the user should know that is not a failure.
    fn warn(&self, message: &str) {
        tracing::warn!("{}", message.strip_prefix("warning: ").unwrap_or(message));
    }
}

/// Progress that goes to the log: the hub's own work, whose stdout stays silent.
pub struct LogProgress;

impl Progress for LogProgress {
    fn step(&self, cert: &str, message: &str) {
        tracing::info!(cert, "{message}");
    }
}
