//! The examples' global allocator: mimalloc, told to keep the memory a training step frees
//! for the next step.
//!
//! A training step allocates every activation afresh (about 1 GiB for mini-Xception at
//! 180x180, batch 16) and frees it in the backward pass. With its defaults mimalloc hands
//! those pages back to the kernel within milliseconds, and the next step faults them in
//! again, zeroed: ~100k page faults and 10-20% of a step. Never purging and reserving a
//! 4 GiB arena up front (address space; pages are committed on first use) brings that to
//! ~1k faults. `bench_train` measures it.

/// mimalloc also avoids glibc's fresh `mmap` for every buffer over 32 MiB (see the README).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` and `mi_option_arena_reserve` in mimalloc's `mi_option_e`
/// (the same values in its v2 and v3 headers; `libmimalloc-sys` does not name them).
const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
const ARENA_RESERVE: libmimalloc_sys::mi_option_t = 23;

/// Keeps freed memory mapped (no purging) and reserves arenas in 4 GiB steps. Call first
/// thing in `main`; the settings apply to allocations from then on.
pub fn keep_freed_memory() {
    // SAFETY: `mi_option_set` only stores an option value; both are valid options of the
    // linked mimalloc (checked against its headers above).
    unsafe {
        libmimalloc_sys::mi_option_set(PURGE_DELAY, -1);
        libmimalloc_sys::mi_option_set(ARENA_RESERVE, 4 << 20); // KiB
    }
}
