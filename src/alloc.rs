//! envc's global allocator: the C library's `malloc`, except for the one-shot
//! commands that read a big profile (`plan`, `check` of thousands of
//! devices), where small blocks come from a free-list arena instead.
//!
//! Loading 10,000 devices makes about 600,000 small allocations (the TOML
//! parser's keys, strings and tables, then the profile's and the plan's), and
//! glibc's `malloc`, `free` and `realloc` were a quarter of the instructions
//! of `envc plan`. The arena hands out blocks of a size class from that
//! class's free list, or else from the end of one big mapping: no headers,
//! no bins to sort, no coalescing. A freed block goes back on its class's
//! list, so memory is reused as with `malloc`. Blocks over
//! [`ARENA_MAX`] bytes, or aligned to more than 16, still go to `malloc`;
//! so does everything when the arena is off (a container's start never
//! turns it on) or full.
//!
//! [`enable`] turns it on for the rest of the process. Blocks made before
//! are freed to `malloc`, blocks of the arena to the arena: a pointer's
//! address says which.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::{Cell, UnsafeCell};
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// The largest block the arena serves.
pub const ARENA_MAX: usize = 64 << 10;

/// Size classes: 16-byte steps up to 1 KiB (64 classes), then powers of two
/// up to [`ARENA_MAX`] (2 KiB … 64 KiB: 6 classes).
const CLASSES: usize = 64 + 6;

/// The arena's address space: reserved, backed only where it is used (a
/// 16 MiB profile, the most `envc` reads, needs a fraction of it).
const RESERVE: usize = 4 << 30;

/// The class of a block of `size` bytes (`0 < size <= ARENA_MAX`), and the
/// bytes it holds.
fn class_of(size: usize) -> (usize, usize) {
    if size <= 1024 {
        let c = size.div_ceil(16);
        (c - 1, c * 16)
    } else {
        let bytes = size.next_power_of_two();
        (64 + (bytes.trailing_zeros() as usize - 11), bytes)
    }
}

/// The allocator (`#[global_allocator]` in the binary).
pub struct Alloc;

/// The arena's mapping starts here (`RESERVE` bytes); 0 until [`enable`]
/// has mapped it, and while it is 0 the arena is off. One word, so no
/// reader sees half of it.
static BASE: AtomicUsize = AtomicUsize::new(0);
/// Set by the first [`enable`]: a second one does nothing.
static CLAIMED: AtomicBool = AtomicBool::new(false);

/// A lane's bump pointer and free lists.
struct Lists {
    top: usize,
    free: [usize; CLASSES],
}

/// Lanes: each has its own share of the mapping to bump through, its own
/// free lists and its own spin lock. A thread uses lane 0 unless it asked
/// for the helpers' lane ([`use_helper_lane`]), so a big profile's helper
/// threads (its parse, conversion and plan check in halves) do not take
/// turns at one lock with the main one. A freed block goes on the freeing
/// thread's lane: a class is a size, whichever lane made it.
const LANES: usize = 2;

#[repr(align(64))]
struct Lane {
    lock: AtomicBool,
    lists: UnsafeCell<Lists>,
}

// SAFETY: a lane's lists are only reached through `with_lists`, under its
// lock.
unsafe impl Sync for Lane {}

static LANE: [Lane; LANES] = [const {
    Lane {
        lock: AtomicBool::new(false),
        lists: UnsafeCell::new(Lists {
            top: 0,
            free: [0; CLASSES],
        }),
    }
}; LANES];

thread_local! {
    /// The lane this thread allocates from and frees to.
    static MY_LANE: Cell<usize> = const { Cell::new(0) };
}

/// Makes the calling thread use the helpers' lane from now on (a thread
/// that works beside the main one; any number may, they share that lane).
pub fn use_helper_lane() {
    MY_LANE.with(|l| l.set(LANES - 1));
}

/// Runs `here` on this thread and `there` beside it on a helper thread (on
/// the helpers' lane), and returns both results. A panic in `there` goes on
/// here; if no thread can be started, this thread runs `there` after `here`.
pub fn side_by_side<A, B>(here: impl FnOnce() -> A, there: impl FnOnce() -> B + Send) -> (A, B)
where
    B: Send,
{
    let slot = std::sync::Mutex::new(Some(there));
    let take = || slot.lock().ok().and_then(|mut s| s.take());
    std::thread::scope(|s| {
        let helper = std::thread::Builder::new().spawn_scoped(s, || {
            use_helper_lane();
            take().map(|f| f())
        });
        let a = here();
        let b = match helper {
            Ok(h) => h
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
            Err(_) => None,
        };
        let b = b.or_else(|| take().map(|f| f()));
        (a, b.expect("`there` ran on one thread or the other"))
    })
}

/// Where lane `i`'s share of the mapping at `base` starts (and lane
/// `i - 1`'s ends).
fn lane_start(base: usize, i: usize) -> usize {
    base + i * (RESERVE / LANES)
}

/// Runs `f` on this thread's lane (its lists and its index).
fn with_lists<T>(f: impl FnOnce(&mut Lists, usize) -> T) -> T {
    let i = MY_LANE.with(Cell::get);
    with_lane(i, |l| f(l, i))
}

/// Runs `f` on lane `i`'s lists, under its lock.
fn with_lane<T>(i: usize, f: impl FnOnce(&mut Lists) -> T) -> T {
    let lane = &LANE[i];
    while lane
        .lock
        .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        std::hint::spin_loop();
    }
    // SAFETY: the lock above gives this thread the only access to this
    // lane's lists until it is released below.
    let out = f(unsafe { &mut *lane.lists.get() });
    lane.lock.store(false, Ordering::Release);
    out
}

/// Turns the arena on for the rest of the process: reserves its address
/// space (backed by transparent huge pages where the kernel has them).
/// Does nothing if the reservation fails (strict overcommit, say): `malloc`
/// serves everything then, as before.
pub fn enable() {
    if CLAIMED.swap(true, Ordering::AcqRel) {
        return;
    }
    // SAFETY: a fresh private anonymous mapping, not touched unless it
    // succeeded; madvise only changes how its pages are backed.
    let base = unsafe {
        let p = libc::mmap(
            ptr::null_mut(),
            RESERVE,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        );
        if p == libc::MAP_FAILED {
            return;
        }
        libc::madvise(p, RESERVE, libc::MADV_HUGEPAGE);
        p as usize
    };
    for i in 0..LANES {
        with_lane(i, |l| l.top = lane_start(base, i));
    }
    BASE.store(base, Ordering::Release);
}

/// Whether `p` is one of the arena's blocks.
fn in_arena(p: *mut u8) -> bool {
    let base = BASE.load(Ordering::Acquire);
    base != 0 && (p as usize).wrapping_sub(base) < RESERVE
}

/// Whether the arena serves `layout`.
fn served(layout: &Layout) -> bool {
    layout.size() <= ARENA_MAX && layout.align() <= 16 && BASE.load(Ordering::Acquire) != 0
}

/// A block of class `c` (`bytes` long), or null if the arena is full.
fn take(c: usize, bytes: usize) -> *mut u8 {
    with_lists(|l, i| {
        let head = l.free[c];
        if head != 0 {
            // SAFETY: a free block of this class holds the next one's
            // address in its first word (written by `give`).
            l.free[c] = unsafe { *(head as *const usize) };
            return head as *mut u8;
        }
        if l.top + bytes > lane_start(BASE.load(Ordering::Relaxed), i + 1) {
            return ptr::null_mut();
        }
        let p = l.top;
        l.top += bytes;
        p as *mut u8
    })
}

/// Puts a block of class `c` back on its list.
fn give(p: *mut u8, c: usize) {
    with_lists(|l, _| {
        // SAFETY: `p` is a block of at least 16 bytes that its owner gave
        // up: its first word now links the list.
        unsafe { *(p as *mut usize) = l.free[c] };
        l.free[c] = p as usize;
    })
}

// The methods are not inlined: LTO would copy them into every allocation
// and free of the program (0.8 MB more code).
// SAFETY: every block handed out is at least `layout.size()` bytes, aligned
// to 16 (class sizes are multiples of 16 from a 16-aligned base; System
// serves larger alignments), and owned by one caller until it is given back.
unsafe impl GlobalAlloc for Alloc {
    #[inline(never)]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if served(&layout) {
            let (c, bytes) = class_of(layout.size());
            let p = take(c, bytes);
            if !p.is_null() {
                return p;
            }
        }
        // SAFETY: the caller's layout, passed on.
        unsafe { System.alloc(layout) }
    }

    #[inline(never)]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if served(&layout) {
            // SAFETY: as `alloc`; the block is then zeroed (a reused one
            // holds old bytes).
            let p = unsafe { self.alloc(layout) };
            if !p.is_null() {
                unsafe { ptr::write_bytes(p, 0, layout.size()) };
            }
            return p;
        }
        // SAFETY: the caller's layout, passed on.
        unsafe { System.alloc_zeroed(layout) }
    }

    #[inline(never)]
    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        if in_arena(p) {
            give(p, class_of(layout.size()).0);
        } else {
            // SAFETY: not the arena's, so System's (the caller's contract).
            unsafe { System.dealloc(p, layout) }
        }
    }

    #[inline(never)]
    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if !in_arena(p) {
            // SAFETY: System's block, passed on.
            return unsafe { System.realloc(p, layout, new_size) };
        }
        if new_size <= ARENA_MAX && class_of(new_size).0 == class_of(layout.size()).0 {
            return p;
        }
        // SAFETY: the new layout is valid (the caller's contract for
        // realloc); the old block is copied from, then given back.
        unsafe {
            let new_layout = Layout::from_size_align_unchecked(new_size, layout.align());
            let n = self.alloc(new_layout);
            if !n.is_null() {
                ptr::copy_nonoverlapping(p, n, layout.size().min(new_size));
                self.dealloc(p, layout);
            }
            n
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_hold_their_sizes() {
        let mut last = 0;
        for size in 1..=ARENA_MAX {
            let (c, bytes) = class_of(size);
            assert!(c < CLASSES, "{size}");
            assert!(bytes >= size && bytes % 16 == 0, "{size}");
            assert!(c >= last, "{size}");
            last = c;
            // Every size of a class fits that class's blocks.
            assert_eq!(class_of(bytes), (c, bytes), "{size}");
        }
        assert_eq!(class_of(1), (0, 16));
        assert_eq!(class_of(1024), (63, 1024));
        assert_eq!(class_of(1025), (64, 2048));
        assert_eq!(class_of(ARENA_MAX), (CLASSES - 1, ARENA_MAX));
    }

    /// The arena's blocks through the allocator's own interface (a test
    /// binary keeps the default allocator): distinct, aligned, keeping
    /// their bytes across reallocs into other classes and out of the arena,
    /// reused once freed; System's blocks freed to System.
    #[test]
    fn blocks_are_distinct_kept_and_reused() {
        let a = Alloc;
        // A block made before the arena is on stays System's.
        let before_layout = Layout::from_size_align(100, 8).unwrap();
        let before = unsafe { a.alloc(before_layout) };
        assert!(!before.is_null() && !in_arena(before));
        enable();
        if BASE.load(Ordering::Acquire) == 0 {
            // No address space for it here: malloc serves everything.
            unsafe { a.dealloc(before, before_layout) };
            return;
        }
        // A block made before, grown after: it stays System's, bytes kept.
        let before = unsafe {
            ptr::write_bytes(before, 7, 100);
            a.realloc(before, before_layout, 300)
        };
        let before_layout = Layout::from_size_align(300, 8).unwrap();
        assert!(!before.is_null() && !in_arena(before));
        assert!(
            unsafe { std::slice::from_raw_parts(before, 100) }
                .iter()
                .all(|b| *b == 7)
        );
        // A second `enable` changes nothing.
        let base = BASE.load(Ordering::Acquire);
        enable();
        assert_eq!(BASE.load(Ordering::Acquire), base);
        let mut live: Vec<(*mut u8, Layout, u8)> = Vec::new();
        for i in 0..2000usize {
            let size = 1 + (i * 37) % 3000;
            let layout = Layout::from_size_align(size, if i % 3 == 0 { 16 } else { 8 }).unwrap();
            let p = unsafe { a.alloc(layout) };
            assert!(!p.is_null());
            assert!(in_arena(p), "{size}");
            assert_eq!(p as usize % layout.align(), 0);
            unsafe { ptr::write_bytes(p, i as u8, size) };
            live.push((p, layout, i as u8));
            // Free every third one again, to be reused.
            if i % 3 == 2 {
                let (p, layout, _) = live.remove(live.len() / 2);
                unsafe { a.dealloc(p, layout) };
            }
        }
        // Grow and shrink some, through classes and out of the arena.
        for (n, (p, layout, fill)) in live.iter_mut().enumerate().take(200) {
            let new_size = match n % 4 {
                0 => layout.size() + 1,
                1 => layout.size() * 5,
                2 => ARENA_MAX + 4096,
                _ => 1.max(layout.size() / 3),
            };
            let kept = layout.size().min(new_size);
            let q = unsafe { a.realloc(*p, *layout, new_size) };
            assert!(!q.is_null());
            let bytes = unsafe { std::slice::from_raw_parts(q, kept) };
            assert!(
                bytes.iter().all(|b| b == fill),
                "realloc {} -> {new_size}",
                layout.size()
            );
            assert_eq!(in_arena(q), new_size <= ARENA_MAX);
            *p = q;
            *layout = Layout::from_size_align(new_size, layout.align()).unwrap();
            unsafe { ptr::write_bytes(q, *fill, new_size) };
        }
        // No two live blocks overlap; each kept its bytes.
        let mut spans: Vec<(usize, usize)> = live
            .iter()
            .map(|(p, l, _)| (*p as usize, *p as usize + l.size()))
            .collect();
        spans.sort();
        for w in spans.windows(2) {
            assert!(w[0].1 <= w[1].0, "overlap {:x?}", w);
        }
        for (p, layout, fill) in &live {
            let bytes = unsafe { std::slice::from_raw_parts(*p, layout.size()) };
            assert!(bytes.iter().all(|b| b == fill));
        }
        // A freed block is the next one of its class.
        let (p, layout, _) = live.pop().unwrap();
        let reused = in_arena(p);
        unsafe { a.dealloc(p, layout) };
        let q = unsafe { a.alloc(layout) };
        if reused {
            assert_eq!(q, p);
        }
        unsafe { a.dealloc(q, layout) };
        // Zeroed blocks are zero even when reused.
        let zl = Layout::from_size_align(48, 8).unwrap();
        let z = unsafe { a.alloc(zl) };
        unsafe { ptr::write_bytes(z, 0xff, 48) };
        unsafe { a.dealloc(z, zl) };
        let z = unsafe { a.alloc_zeroed(zl) };
        assert!(
            unsafe { std::slice::from_raw_parts(z, 48) }
                .iter()
                .all(|b| *b == 0)
        );
        unsafe { a.dealloc(z, zl) };
        // Over-aligned and big blocks are System's.
        let big = Layout::from_size_align(64, 4096).unwrap();
        let b = unsafe { a.alloc(big) };
        assert!(!in_arena(b) && b as usize % 4096 == 0);
        unsafe { a.dealloc(b, big) };
        for (p, layout, _) in live {
            unsafe { a.dealloc(p, layout) };
        }
        unsafe { a.dealloc(before, before_layout) };
    }

    /// Two threads on their own lanes at once: their blocks never overlap,
    /// keep their bytes, and a block freed by the other thread is reused
    /// by it (a class is a size, whichever lane made the block).
    #[test]
    fn lanes_serve_threads_apart() {
        let a = Alloc;
        enable();
        if BASE.load(Ordering::Acquire) == 0 {
            return;
        }
        let layout = Layout::from_size_align(80, 8).unwrap();
        let make = |fill: u8| {
            (0..3000)
                .map(|_| {
                    let p = unsafe { a.alloc(layout) };
                    assert!(in_arena(p));
                    unsafe { ptr::write_bytes(p, fill, 80) };
                    p as usize
                })
                .collect::<Vec<usize>>()
        };
        let (mine, theirs) = std::thread::scope(|s| {
            let h = s.spawn(|| {
                use_helper_lane();
                make(2)
            });
            (make(1), h.join().unwrap())
        });
        let base = BASE.load(Ordering::Acquire);
        let half = lane_start(base, 1);
        assert!(theirs.iter().all(|&p| p >= half), "the helper's lane");
        let mut all: Vec<usize> = mine.iter().chain(&theirs).copied().collect();
        all.sort();
        assert!(all.windows(2).all(|w| w[0] + 80 <= w[1]), "overlap");
        for (list, fill) in [(&mine, 1u8), (&theirs, 2)] {
            for &p in list.iter() {
                let bytes = unsafe { std::slice::from_raw_parts(p as *const u8, 80) };
                assert!(bytes.iter().all(|b| *b == fill));
            }
        }
        // The helper's blocks, freed here, are this thread's to reuse.
        for &p in &theirs {
            unsafe { a.dealloc(p as *mut u8, layout) };
        }
        // (Another test may take some of them meanwhile; not all 3,000.)
        let again = unsafe { a.alloc(layout) };
        assert!(theirs.contains(&(again as usize)));
        unsafe { a.dealloc(again, layout) };
        for &p in &mine {
            unsafe { a.dealloc(p as *mut u8, layout) };
        }
    }

    /// Both sides run and return in place; the helper runs on its lane; a
    /// panic beside goes on here.
    #[test]
    fn side_by_side_runs_both_and_passes_on_a_panic() {
        let (a, (b, lane)) = side_by_side(|| 2 + 2, || ("beside", MY_LANE.with(Cell::get)));
        assert_eq!((a, b, lane), (4, "beside", LANES - 1));
        assert_eq!(MY_LANE.with(Cell::get), 0);
        let caught = std::panic::catch_unwind(|| side_by_side(|| 1, || -> u8 { panic!("there") }));
        assert!(caught.is_err());
    }
}
