//! Process-wide tuning shared by the examples: mimalloc as the global allocator, told to keep
//! the memory a training step frees for the next step, and a short spin of candle's own
//! worker pool.
//!
//! A training step allocates every activation afresh (about 1 GiB for mini-Xception at
//! 180x180, batch 16) and frees it in the backward pass. With its defaults mimalloc hands
//! those pages back to the kernel within milliseconds, and the next step faults them in
//! again, zeroed: ~100k page faults and 10-20% of a step. Never purging and reserving arenas
//! in 4 GiB steps (address space; pages are committed on first use) brings that to ~10k.
//!
//! Candle's CPU elementwise ops run on a pool of its own whose threads spin 25,000 rounds
//! for the next op before sleeping; the runtime's kernels run on rayon's pool, and on two
//! cores the spinning threads take the cores from it. 500 rounds made the 64x64 training
//! step 15-35% faster in `bench_train` (no change at 180x180).

/// mimalloc also avoids glibc's fresh `mmap` for every buffer over 32 MiB (see the README).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` and `mi_option_arena_reserve` in mimalloc's `mi_option_e`
/// (the same values in its v2 and v3 headers; `libmimalloc-sys` does not name them).
const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
const ARENA_RESERVE: libmimalloc_sys::mi_option_t = 23;

/// Applies the settings above. Call first thing in `main`, before any tensor op and before
/// other threads start; `CANDLE_BARRIER_POOL_SPIN_LIMIT` set by the user is kept.
pub fn apply() {
    // SAFETY: `mi_option_set` only stores an option value; both are valid options of the
    // linked mimalloc (checked against its headers above).
    unsafe {
        libmimalloc_sys::mi_option_set(PURGE_DELAY, -1);
        libmimalloc_sys::mi_option_set(ARENA_RESERVE, 4 << 20); // KiB
    }
    const SPIN: &str = "CANDLE_BARRIER_POOL_SPIN_LIMIT";
    if std::env::var_os(SPIN).is_none() {
        // Read by candle when its pool starts, at the first elementwise op.
        std::env::set_var(SPIN, "500");
    }
}
