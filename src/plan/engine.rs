//! Runs a [`StageGraph`]: each stage starts once every stage it depends on has
//! finished.
//!
//! Two rules decide what overlaps. I/O stages (scans, sheet loads, hashing,
//! target reads) start on their own threads as soon as they are ready,
//! because they mostly wait. CPU stages take turns on one thread: each one is
//! already data-parallel on rayon's pool, so two at once only compete for the
//! same cores and hold both working sets.
//! After a stage fails no new stage starts; those already running finish, so
//! every independent error is reported together (a broken sheet and a missing
//! folder in one run), and the order of errors follows the graph, not timing.

use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use super::graph::{StageGraph, StageKind};

/// What became of one stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StageState {
    Done,
    Failed,
    /// Not started: a stage failed first.
    Skipped,
}

/// One stage's run, for `plan --stats` and benchmarks.
#[derive(Debug, Clone)]
pub struct StageRun {
    pub id: String,
    pub state: StageState,
    /// Wall time from its start to its end (zero when skipped).
    pub elapsed: Duration,
    /// Peak resident memory of the process when it ended (Linux; 0 elsewhere).
    pub peak_rss_mib: u64,
}

/// Every stage's run, in graph order, and the errors of those that failed.
#[derive(Debug)]
pub struct Execution<E> {
    pub runs: Vec<StageRun>,
    /// `(stage index, error)`, in graph order.
    pub errors: Vec<(usize, E)>,
}

/// Runs every stage of `graph` through `run(stage index)`.
pub fn execute<E: Send>(
    graph: &StageGraph,
    run: &(dyn Fn(usize) -> Result<(), E> + Sync),
) -> Execution<E> {
    let n = graph.stages.len();
    let mut waiting_on: Vec<usize> = graph.stages.iter().map(|s| s.deps.len()).collect();
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, s) in graph.stages.iter().enumerate() {
        for &d in &s.deps {
            dependents[d].push(i);
        }
    }
    let mut runs: Vec<StageRun> = graph
        .stages
        .iter()
        .map(|s| StageRun {
            id: s.id.clone(),
            state: StageState::Skipped,
            elapsed: Duration::ZERO,
            peak_rss_mib: 0,
        })
        .collect();
    let mut errors: Vec<(usize, E)> = Vec::new();
    thread::scope(|scope| {
        let (done_tx, done_rx) =
            mpsc::channel::<(usize, Duration, thread::Result<Result<(), E>>)>();
        // CPU stages run one after another on one long-lived thread: they
        // take turns anyway, and one thread keeps their allocations in one
        // malloc arena, where what a stage frees is there for the next.
        let (cpu_tx, cpu_rx) = mpsc::channel::<usize>();
        {
            let tx = done_tx.clone();
            thread::Builder::new()
                .name("stage-cpu".to_owned())
                .spawn_scoped(scope, move || {
                    for stage in cpu_rx {
                        let _ = tx.send(timed(run, stage));
                    }
                })
                .unwrap_or_else(|e| panic!("cannot start a planner thread: {e}"));
        }
        let mut ready: Vec<usize> = (0..n).filter(|&i| waiting_on[i] == 0).collect();
        let (mut running, mut cpu_busy, mut failed) = (0usize, false, false);
        let mut panic = None;
        loop {
            if !failed {
                // Graph order among the ready: earlier stages first.
                ready.sort_unstable();
                let mut i = 0;
                while i < ready.len() {
                    let stage = ready[i];
                    let cpu = graph.stages[stage].kind.is_cpu();
                    if cpu && cpu_busy {
                        i += 1;
                        continue;
                    }
                    ready.remove(i);
                    cpu_busy |= cpu;
                    running += 1;
                    tracing::debug!(stage = %graph.stages[stage].id, cpu, "stage started");
                    if cpu {
                        // Taken by the one CPU thread (see `cpu_tx`).
                        let _ = cpu_tx.send(stage);
                    } else {
                        let tx = done_tx.clone();
                        thread::Builder::new()
                            .name(format!("stage-{}", graph.stages[stage].id))
                            .spawn_scoped(scope, move || {
                                let _ = tx.send(timed(run, stage));
                            })
                            .unwrap_or_else(|e| panic!("cannot start a planner thread: {e}"));
                    }
                }
            }
            if running == 0 {
                break;
            }
            let Ok((stage, elapsed, result)) = done_rx.recv() else {
                break;
            };
            running -= 1;
            if graph.stages[stage].kind.is_cpu() {
                cpu_busy = false;
            }
            runs[stage].elapsed = elapsed;
            runs[stage].peak_rss_mib = peak_rss_mib();
            tracing::debug!(
                stage = %graph.stages[stage].id,
                seconds = elapsed.as_secs_f64(),
                peak_rss_mib = runs[stage].peak_rss_mib,
                ok = matches!(result, Ok(Ok(()))),
                "stage finished"
            );
            let result = match result {
                Ok(r) => r,
                Err(payload) => {
                    runs[stage].state = StageState::Failed;
                    panic = Some(payload);
                    failed = true;
                    continue;
                }
            };
            match result {
                Ok(()) => {
                    runs[stage].state = StageState::Done;
                    for &d in &dependents[stage] {
                        waiting_on[d] -= 1;
                        if waiting_on[d] == 0 {
                            ready.push(d);
                        }
                    }
                }
                Err(e) => {
                    runs[stage].state = StageState::Failed;
                    errors.push((stage, e));
                    failed = true;
                }
            }
        }
        // Ends the CPU thread's loop.
        drop(cpu_tx);
        if let Some(payload) = panic {
            std::panic::resume_unwind(payload);
        }
    });
    errors.sort_by_key(|(stage, _)| *stage);
    Execution { runs, errors }
}

/// Runs one stage, timing it; a panic is caught so the scheduler still hears
/// of the stage (it is raised again once every running stage has ended).
fn timed<E>(
    run: &(dyn Fn(usize) -> Result<(), E> + Sync),
    stage: usize,
) -> (usize, Duration, thread::Result<Result<(), E>>) {
    let start = Instant::now();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(stage)));
    (stage, start.elapsed(), result)
}

impl StageKind {
    fn is_cpu(self) -> bool {
        matches!(
            self,
            StageKind::Classify
                | StageKind::Group
                | StageKind::MergeValidate
                | StageKind::Diff
                | StageKind::Assemble
        )
    }
}

/// The process's peak resident memory so far (`VmHWM`), in MiB.
pub fn peak_rss_mib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb / 1024)
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::plan::graph::Stage;

    fn stage(id: &str, kind: StageKind, deps: Vec<usize>) -> Stage {
        Stage {
            id: id.to_owned(),
            label: id.to_owned(),
            kind,
            deps,
        }
    }

    /// scan_0, scan_1 → classify → group → checksum; load_metadata_0 on the side.
    fn graph() -> StageGraph {
        StageGraph {
            stages: vec![
                stage("scan_0", StageKind::Scan(0), vec![]),
                stage("scan_1", StageKind::Scan(1), vec![]),
                stage("load_metadata_0", StageKind::LoadSheet(0), vec![]),
                stage("classify", StageKind::Classify, vec![0, 1]),
                stage("group", StageKind::Group, vec![3]),
                stage("checksum", StageKind::Checksum, vec![4]),
                stage("merge_validate", StageKind::MergeValidate, vec![2, 4]),
            ],
        }
    }

    #[test]
    fn every_stage_runs_after_its_dependencies() {
        let g = graph();
        let order = Mutex::new(Vec::new());
        let ran = execute::<()>(&g, &|i| {
            order.lock().unwrap().push(i);
            Ok(())
        });
        let order = order.into_inner().unwrap();
        assert_eq!(order.len(), g.stages.len());
        for (i, s) in g.stages.iter().enumerate() {
            let at = order.iter().position(|&x| x == i).unwrap();
            for d in &s.deps {
                assert!(order.iter().position(|x| x == d).unwrap() < at, "{order:?}");
            }
        }
        assert!(ran.errors.is_empty());
        assert!(ran.runs.iter().all(|r| r.state == StageState::Done));
    }

    #[test]
    fn io_stages_overlap_and_cpu_stages_take_turns() {
        let g = graph();
        let (io_now, io_max, cpu_now, cpu_max) = (
            AtomicUsize::new(0),
            AtomicUsize::new(0),
            AtomicUsize::new(0),
            AtomicUsize::new(0),
        );
        execute::<()>(&g, &|i| {
            let (now, max) = if g.stages[i].kind.is_cpu() {
                (&cpu_now, &cpu_max)
            } else {
                (&io_now, &io_max)
            };
            max.fetch_max(now.fetch_add(1, Ordering::SeqCst) + 1, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(30));
            now.fetch_sub(1, Ordering::SeqCst);
            Ok(())
        });
        // The two scans and the sheet load have no dependencies: they overlap.
        assert!(io_max.load(Ordering::SeqCst) >= 2);
        assert_eq!(cpu_max.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn after_a_failure_running_stages_finish_and_nothing_new_starts() {
        let g = graph();
        let ran = execute(&g, &|i| match i {
            0 => Err("scan_0 failed"),
            2 => {
                std::thread::sleep(Duration::from_millis(30));
                Err("sheet failed")
            }
            _ => Ok(()),
        });
        let states: Vec<StageState> = ran.runs.iter().map(|r| r.state).collect();
        assert_eq!(states[0], StageState::Failed);
        assert_eq!(states[2], StageState::Failed);
        for (state, s) in states.iter().zip(&g.stages).skip(3) {
            assert_eq!(*state, StageState::Skipped, "{}", s.id);
        }
        // Both errors, in graph order whichever finished first.
        let errors: Vec<&str> = ran.errors.iter().map(|(_, e)| *e).collect();
        assert_eq!(errors, ["scan_0 failed", "sheet failed"]);
    }
}
