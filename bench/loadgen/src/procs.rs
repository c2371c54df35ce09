//! The two processes under test — `coursepay sandbox` and `coursepay serve` — started as
//! children so their CPU time can be read from `/proc/<pid>/stat` apart from the load
//! generator's own.

use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// A started `coursepay` process, killed when dropped.
pub struct Proc {
    child: Child,
    pub base: String,
    pid: u32,
    ticks_per_second: f64,
}

impl Proc {
    /// Starts `[wrap] bin args` with exactly `envs` (plus PATH) and waits for its
    /// "listening on http://…" line on stderr.
    pub async fn start(
        wrap: Option<&str>,
        bin: &str,
        args: &[&str],
        envs: &[(&str, String)],
        ticks_per_second: f64,
    ) -> Result<Proc, String> {
        let mut words: Vec<&str> = wrap
            .map(|w| w.split_whitespace().collect())
            .unwrap_or_default();
        words.push(bin);
        words.extend(args);
        let mut child = Command::new(words[0])
            .args(&words[1..])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(envs.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::null())
            // The service's request lines would cost the terminal more than the service.
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("starting {bin}: {e}"))?;
        let pid = child.id().ok_or("the child exited at once")?;
        let stderr = child.stderr.take().ok_or("no stderr pipe")?;
        let mut lines = BufReader::new(stderr).lines();
        let base = tokio::time::timeout(Duration::from_secs(60), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(i) = line.find("http://") {
                    return Some(
                        line[i..]
                            .chars()
                            .take_while(|c| !c.is_whitespace())
                            .collect::<String>(),
                    );
                }
                eprintln!("  {}: {line}", args.first().unwrap_or(&""));
            }
            None
        })
        .await
        .map_err(|_| format!("{bin} {args:?} did not start within 60 s"))?
        .ok_or_else(|| format!("{bin} {args:?} exited before listening"))?;
        // Keep draining stderr so the child never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Proc {
            child,
            base,
            pid,
            ticks_per_second,
        })
    }

    /// CPU seconds (user + system, all threads, exited ones included) used so far.
    pub fn cpu_seconds(&self) -> f64 {
        cpu_ticks(self.pid).map_or(f64::NAN, |t| t as f64 / self.ticks_per_second)
    }

    /// SIGTERM (the service drains and exits; a profiler wrapping it writes its profile),
    /// then SIGKILL if it is still running after 60 s.
    pub async fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status()
            .await;
        if tokio::time::timeout(Duration::from_secs(60), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

/// utime + stime (fields 14 and 15) of `/proc/<pid>/stat`, in clock ticks. The command name
/// (field 2) may contain spaces, so fields are counted after its closing parenthesis.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_cpu_ticks(&stat)
}

fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    // After ")": field 3 (state) is index 0, so utime (14) is index 11 and stime (15) 12.
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// CPU seconds a phase cost each process.
#[derive(Debug, Clone, Copy)]
pub struct CpuMark {
    service: f64,
    sandbox: f64,
}

impl CpuMark {
    pub fn now(service: &Proc, sandbox: &Proc) -> CpuMark {
        CpuMark {
            service: service.cpu_seconds(),
            sandbox: sandbox.cpu_seconds(),
        }
    }

    /// (service, sandbox) CPU seconds since `self`.
    pub fn since(self, service: &Proc, sandbox: &Proc) -> (f64, f64) {
        let now = CpuMark::now(service, sandbox);
        (now.service - self.service, now.sandbox - self.sandbox)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_utime_and_stime_past_a_command_name_with_spaces() {
        let stat = "4242 (tokio (rt) w) S 1 4242 4242 0 -1 4194560 1000 0 0 0 \
                    1234 567 0 0 20 0 9 0 100 0 0";
        assert_eq!(parse_cpu_ticks(stat), Some(1234 + 567));
        assert_eq!(parse_cpu_ticks("garbage"), None);
    }

    #[test]
    fn reads_this_process_own_stat() {
        assert!(cpu_ticks(std::process::id()).is_some());
    }
}
