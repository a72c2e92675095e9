//! CPU time a process has used, user and system together, from `/proc/<pid>/stat` (Linux; elsewhere
//! nothing): what a benchmark divides by the work done to say what one unit costs the machine.

/// The kernel reports these times in ticks of `USER_HZ`, which is 100 on every Linux architecture
/// this runs on.
const TICKS_A_SECOND: f64 = 100.0;

/// The cores this process may run on.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// The units of work a second `cores` would carry if each cost `cpu_secs_each` and nothing else
/// ran: the ceiling a benchmark's rate is measured against. `None` for a cost of zero (a window too
/// short for the clock's 10 ms ticks).
pub fn ceiling_per_sec(cores: usize, cpu_secs_each: f64) -> Option<f64> {
    (cpu_secs_each > 0.0).then(|| cores as f64 / cpu_secs_each)
}

/// CPU seconds used so far by `pid`, or by this process with `None`.
pub fn cpu_secs(pid: Option<u32>) -> Option<f64> {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/stat"),
        None => "/proc/self/stat".to_owned(),
    };
    parse_stat(&std::fs::read_to_string(path).ok()?)
}

/// `utime` and `stime` (fields 14 and 15) of a `stat` line. The command name (field 2) is in
/// parentheses and may hold spaces, so the fields are counted after its closing one.
fn parse_stat(stat: &str) -> Option<f64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some((user + system) as f64 / TICKS_A_SECOND)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ceiling_is_the_cores_over_the_cost_of_one() {
        assert_eq!(ceiling_per_sec(2, 0.004), Some(500.0));
        assert_eq!(ceiling_per_sec(2, 0.0), None);
    }

    #[test]
    fn user_and_system_ticks_are_read_after_the_name() {
        let stat = "4242 (a (weird) name) S 1 4242 4242 0 -1 4194560 900 0 0 0 250 75 0 0 20 0 3 0";
        assert_eq!(parse_stat(stat), Some(3.25));
        assert_eq!(parse_stat("4242 (truncated) S 1"), None);
    }

    #[test]
    fn this_process_uses_cpu_while_it_spins() {
        let Some(before) = cpu_secs(None) else {
            return; // not Linux
        };
        let started = std::time::Instant::now();
        let mut spun = 0_u64;
        while cpu_secs(None).expect("still readable") <= before {
            assert!(
                started.elapsed() < std::time::Duration::from_secs(30),
                "30 s of spinning never showed as CPU time"
            );
            for n in 0..100_000_u64 {
                spun = std::hint::black_box(spun.wrapping_add(n));
            }
        }
        assert!(cpu_secs(std::process::id().into()).expect("by pid") > before);
    }
}
