//! The `fork` protocol (issue 16, item 1): heaps used by threads that come and go while the
//! main thread forks; each fork is wrapped in `Heap::fork_prepare` / `fork_parent` /
//! `fork_child`, and every child must allocate, free and exit within a timeout.

use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use stratalloc::{FirstFit, Heap, Strategy, Tiered};

static TIERED: Heap<Tiered> = Heap::new();
static FIRST_FIT: Heap<FirstFit> = Heap::new();

const FORKS: usize = 1000;
const CHILD_TIMEOUT: Duration = Duration::from_secs(10);

fn churn<S: Strategy>(heap: &Heap<S>, round: usize) -> bool {
    let mut ok = true;
    let mut blocks = [(core::ptr::null_mut::<u8>(), Layout::new::<u8>()); 24];
    for (i, b) in blocks.iter_mut().enumerate() {
        let size = if i % 8 == 7 { 40_000 + i * 1000 } else { 8 + i * i * 5 + round % 64 };
        let layout = Layout::from_size_align(size, 8).unwrap();
        // SAFETY: non-zero size.
        let p = unsafe { heap.alloc(layout) };
        ok &= !p.is_null();
        *b = (p, layout);
    }
    for (p, layout) in blocks {
        if !p.is_null() {
            // SAFETY: allocated above with this layout.
            unsafe { heap.dealloc(p, layout) };
        }
    }
    ok
}

fn prepare() {
    TIERED.fork_prepare();
    FIRST_FIT.fork_prepare();
}

#[test]
fn children_never_hang_while_threads_exit() {
    let stop = AtomicBool::new(false);
    thread::scope(|s| {
        for _ in 0..3 {
            s.spawn(|| {
                let mut round = 0;
                while !stop.load(Ordering::Relaxed) {
                    thread::scope(|t| {
                        for _ in 0..2 {
                            t.spawn(|| {
                                churn(&TIERED, round);
                                churn(&FIRST_FIT, round);
                            });
                        }
                    });
                    round += 1;
                }
            });
        }
        let mut hung = 0;
        for f in 0..FORKS {
            prepare();
            // SAFETY: the child only allocates from the heaps (whose locks it owns after
            // `fork_child`) and leaves with `_exit`, running no destructor or atexit handler.
            let pid = unsafe { libc::fork() };
            if pid == 0 {
                // SAFETY: the child of a fork made after this thread's `fork_prepare`.
                unsafe {
                    TIERED.fork_child();
                    FIRST_FIT.fork_child();
                }
                let ok = churn(&TIERED, f) & churn(&FIRST_FIT, f);
                // SAFETY: ends the child at once.
                unsafe { libc::_exit(if ok { 0 } else { 1 }) };
            }
            // SAFETY: this thread called `fork_prepare` just before the fork.
            unsafe {
                TIERED.fork_parent();
                FIRST_FIT.fork_parent();
            }
            assert!(pid > 0, "fork failed");
            let deadline = Instant::now() + CHILD_TIMEOUT;
            let mut status = 0;
            loop {
                // SAFETY: `pid` is our child; `status` is a valid out pointer.
                let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
                if r == pid {
                    assert!(
                        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
                        "fork {f}: child status {status:#x}"
                    );
                    break;
                }
                if Instant::now() > deadline {
                    hung += 1;
                    // SAFETY: our child, still running; reaped right after.
                    unsafe {
                        libc::kill(pid, libc::SIGKILL);
                        libc::waitpid(pid, &mut status, 0);
                    }
                    break;
                }
                thread::sleep(Duration::from_micros(200));
            }
        }
        stop.store(true, Ordering::Relaxed);
        assert_eq!(hung, 0, "children hung in {FORKS} forks");
    });
}
