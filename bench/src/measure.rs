//! Measuring processes from the outside: CPU seconds of a whole Dovecot instance (its master
//! and every descendant, living or reaped) and wall/CPU/peak RSS of a tool run under
//! `/usr/bin/time`.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};

/// Clock ticks per second for /proc times (USER_HZ; 100 on every Linux build we run on).
const TICKS: f64 = 100.0;

/// (pid, ppid, utime+stime+cutime+cstime in ticks) of every process.
fn processes() -> Vec<(u32, u32, u64)> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in dir.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // The command name may contain spaces; fields resume after the last ')'.
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
            continue;
        };
        let f: Vec<&str> = rest.split(' ').collect();
        // rest[0] is field 3 (state): ppid is field 4, utime..cstime are fields 14..17.
        if f.len() < 15 {
            continue;
        }
        let ppid = f[1].parse().unwrap_or(0);
        let cpu: u64 = f[11..15]
            .iter()
            .map(|v| v.parse::<u64>().unwrap_or(0))
            .sum();
        out.push((pid, ppid, cpu));
    }
    out
}

/// CPU seconds used so far by the process `root` and all its descendants, including children
/// that have already exited and been reaped.
pub fn tree_cpu(root: u32) -> f64 {
    let procs = processes();
    let mut children: HashMap<u32, Vec<usize>> = HashMap::new();
    for (i, p) in procs.iter().enumerate() {
        children.entry(p.1).or_default().push(i);
    }
    let mut total = 0u64;
    let mut stack = vec![root];
    if let Some(p) = procs.iter().find(|p| p.0 == root) {
        total += p.2;
    }
    while let Some(pid) = stack.pop() {
        for &i in children.get(&pid).map(Vec::as_slice).unwrap_or(&[]) {
            total += procs[i].2;
            stack.push(procs[i].0);
        }
    }
    total as f64 / TICKS
}

/// The master PID of a Dovecot instance, from its base_dir.
pub fn master_pid(instance_dir: &Path) -> Result<u32> {
    let file = instance_dir.join("run/master.pid");
    let s = std::fs::read_to_string(&file).with_context(|| format!("{}", file.display()))?;
    Ok(s.trim().parse()?)
}

/// What one measured command cost.
#[derive(Debug, Clone, Copy, Default)]
pub struct Cost {
    /// Wall seconds.
    pub wall: f64,
    /// User+system CPU seconds of the command and its children.
    pub cpu: f64,
    /// Peak resident set of the largest process, in MiB.
    pub rss_mib: f64,
    /// CPU seconds of the PostgreSQL server holding the state, when one does.
    pub state_cpu: Option<f64>,
}

/// Run `argv` under `/usr/bin/time`, with stdout and stderr to `log`. Fails if it fails.
pub fn timed(argv: &[String], log: &Path) -> Result<Cost> {
    let times = log.with_extension("time");
    let out = std::fs::File::create(log)?;
    let err = out.try_clone()?;
    let started = Instant::now();
    let status = Command::new("/usr/bin/time")
        .arg("-f")
        .arg("%e %U %S %M")
        .arg("-o")
        .arg(&times)
        .args(argv)
        .stdout(out)
        .stderr(err)
        .status()
        .context("/usr/bin/time (Debian package `time`)")?;
    let wall = started.elapsed().as_secs_f64();
    if !status.success() {
        bail!("{} failed ({status}); see {}", argv[0], log.display());
    }
    let t = std::fs::read_to_string(&times)?;
    let last = t.lines().last().unwrap_or("");
    let v: Vec<f64> = last.split(' ').filter_map(|x| x.parse().ok()).collect();
    if v.len() != 4 {
        bail!("cannot read {}: {t:?}", times.display());
    }
    Ok(Cost {
        wall,
        cpu: v[1] + v[2],
        rss_mib: v[3] / 1024.0,
        state_cpu: None,
    })
}

/// The median of some values (the mean of the middle two for an even count).
pub fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn our_own_process_tree_has_used_some_cpu() {
        let me = std::process::id();
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        assert!(x != 1);
        assert!(tree_cpu(me) >= 0.0);
    }
}
