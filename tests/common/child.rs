//! The exporter binary as a child process, for the tests that need the real process: exit
//! codes, signals, logs, memory and file descriptors.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

/// A running exporter (JSON logs on loopback port 0); killed when dropped.
pub struct ChildExporter {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    /// Where it serves, from its "serving metrics" log line.
    pub addr: String,
}

impl ChildExporter {
    /// Starts `bin` (the binary cargo built when `None`) with a clean environment plus `env`.
    /// Its stdout and stderr are drained for the whole run (a full pipe would block it).
    pub fn spawn(bin: Option<&str>, args: &[&str], env: &[(&str, &str)]) -> ChildExporter {
        let bin = bin.unwrap_or(env!("CARGO_BIN_EXE_gcore-iam-exporter"));
        let mut child = Command::new(bin)
            .args(["--web.listen-address", "127.0.0.1:0", "--log.format", "json"])
            .args(args)
            .env_clear()
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {bin}: {e}"));
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        for stream in [
            Box::new(child.stderr.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stdout.take().unwrap()),
        ] {
            let lines = lines.clone();
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if let Ok(json) = serde_json::from_str::<serde_json::Value>(&line)
                        && json["message"] == "serving metrics"
                    {
                        let _ = tx.send(json["address"].as_str().unwrap_or_default().to_string());
                    }
                    lines.lock().unwrap().push(line);
                }
            });
        }
        let addr = rx.recv_timeout(Duration::from_secs(20)).unwrap_or_else(|_| {
            panic!("exporter did not start: {:?}", lines.lock().unwrap());
        });
        ChildExporter { child, lines, addr }
    }

    /// Everything it logged so far.
    pub fn log(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    /// Log lines at WARN or ERROR so far.
    pub fn warnings(&self) -> usize {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains("\"level\":\"WARN\"") || l.contains("\"level\":\"ERROR\""))
            .count()
    }

    /// Resident memory, from /proc.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).expect("process alive");
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("VmRSS in /proc/PID/status");
        line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).expect("VmRSS in kB")
    }

    /// Peak resident memory since the process started (VmHWM), from /proc.
    pub fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).expect("process alive");
        let line = status.lines().find(|l| l.starts_with("VmHWM:")).expect("VmHWM in /proc/PID/status");
        line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).expect("VmHWM in kB")
    }

    /// Whether the process still runs.
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().expect("the child can be waited on").is_none()
    }

    /// Open file descriptors, from /proc.
    pub fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.child.id())).expect("process alive").count()
    }

    /// SIGTERM, then the exit status and how long the exporter took to stop.
    pub fn terminate(&mut self) -> (ExitStatus, Duration) {
        let started = Instant::now();
        Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status, started.elapsed());
            }
            assert!(started.elapsed() < Duration::from_secs(15), "no exit after SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for ChildExporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
