//! Matrix multiplies on slices through the `gemm` crate (the kernel behind candle's CPU
//! matmul), for the convolution ops that work image by image without building candle
//! tensors for every step.

use super::cpu::Real;
use gemm::Parallelism;

/// A strided matrix over a slice: element `(i, j)` is `data[i * rs + j * cs]`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Mat<'a, T> {
    pub data: &'a [T],
    pub rows: usize,
    pub cols: usize,
    pub rs: usize,
    pub cs: usize,
}

impl<'a, T> Mat<'a, T> {
    /// The row-major `rows x cols` matrix at the start of `data`.
    pub fn row_major(data: &'a [T], rows: usize, cols: usize) -> Self {
        Mat {
            data,
            rows,
            cols,
            rs: cols,
            cs: 1,
        }
    }

    /// The transpose (a view: no copy).
    pub fn t(self) -> Self {
        Mat {
            data: self.data,
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
        }
    }

    /// True when every element lies inside `data`.
    fn fits(&self) -> bool {
        self.rows == 0
            || self.cols == 0
            || (self.rows - 1) * self.rs + (self.cols - 1) * self.cs < self.data.len()
    }
}

/// How a multiply may use threads: inside a parallel task (one thread) or spread over the
/// rayon pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Threads {
    One,
    Pool,
}

impl Threads {
    /// For an op over `n` images: parallel over images (one thread per multiply) when there
    /// are enough of them to occupy the pool, else the pool inside each multiply.
    pub fn for_images(n: usize) -> Threads {
        if n >= rayon::current_num_threads() {
            Threads::One
        } else {
            Threads::Pool
        }
    }
}

/// `dst = a · b` (or `dst += a · b` when `accumulate`), with `dst` the row-major
/// `a.rows x b.cols` matrix at the start of `dst`.
///
/// # Panics
/// When the shapes disagree or a view reaches outside its slice (callers size every buffer
/// from the same geometry, so this is an internal bug, never bad user input).
pub(crate) fn matmul<T: Real>(dst: &mut [T], a: Mat<T>, b: Mat<T>, accumulate: bool, t: Threads) {
    // SAFETY: `dst` is initialised, so reading it (when accumulating) is sound.
    unsafe { gemm_into(dst.as_mut_ptr(), dst.len(), a, b, accumulate, t) }
}

/// `dst = a · b` into uninitialised memory: on return the first `a.rows * b.cols` elements
/// of `dst` are initialised.
///
/// # Panics
/// As [`matmul`].
pub(crate) fn matmul_uninit<T: Real>(
    dst: &mut [std::mem::MaybeUninit<T>],
    a: Mat<T>,
    b: Mat<T>,
    t: Threads,
) {
    // SAFETY: without accumulation gemm only writes the destination (and fills it when the
    // inner dimension is 0).
    unsafe { gemm_into(dst.as_mut_ptr().cast(), dst.len(), a, b, false, t) }
}

/// # Safety
/// `dst` points to `len` writable elements, initialised when `accumulate`.
unsafe fn gemm_into<T: Real>(
    dst: *mut T,
    len: usize,
    a: Mat<T>,
    b: Mat<T>,
    accumulate: bool,
    t: Threads,
) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert!(
        b.rows == k && a.fits() && b.fits() && len >= m * n,
        "convnet gemm: bad operands {m}x{k} · {}x{n} into {len}",
        b.rows,
    );
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            for i in 0..m * n {
                // SAFETY: `i < m * n <= len`.
                unsafe { dst.add(i).write(T::ZERO) };
            }
        }
        return;
    }
    let parallelism = match t {
        Threads::Pool if rayon::current_num_threads() > 1 => {
            Parallelism::Rayon(rayon::current_num_threads())
        }
        _ => Parallelism::None,
    };
    let one = T::from_count(1);
    // SAFETY: the assertion above keeps every element of `a`, `b` and the `m x n` row-major
    // destination inside its buffer; the destination is exclusively the caller's, so it
    // aliases neither input; it is read only when `accumulate` (then initialised).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            1,
            n as isize,
            accumulate,
            a.data.as_ptr(),
            a.cs as isize,
            a.rs as isize,
            b.data.as_ptr(),
            b.cs as isize,
            b.rs as isize,
            one,
            one,
            false,
            false,
            false,
            parallelism,
        )
    }
}

/// `Σᵢ` over images `i < n` of a gradient of `len` elements: `add(acc, scratch, i, threads)`
/// adds image `i`'s term onto `acc`. In parallel over images with one sum per rayon task when
/// `threads` is [`Threads::One`], else image after image with `Threads::Pool` multiplies.
pub(crate) fn sum_over_images<T: Real, S: Default + Send>(
    n: usize,
    len: usize,
    threads: Threads,
    add: impl Fn(&mut [T], &mut S, usize, Threads) + Sync + Send,
) -> Vec<T> {
    use rayon::prelude::*;
    match threads {
        Threads::Pool => {
            let (mut acc, mut scratch) = (vec![T::ZERO; len], S::default());
            for i in 0..n {
                add(&mut acc, &mut scratch, i, Threads::Pool);
            }
            acc
        }
        Threads::One => (0..n)
            .into_par_iter()
            .with_min_len(super::cpu::per_thread(n))
            .fold(
                || (vec![T::ZERO; len], S::default()),
                |(mut acc, mut scratch), i| {
                    add(&mut acc, &mut scratch, i, Threads::One);
                    (acc, scratch)
                },
            )
            .map(|(acc, _)| acc)
            .reduce(
                || vec![T::ZERO; len],
                |mut a, b| {
                    for (a, b) in a.iter_mut().zip(b) {
                        *a += b;
                    }
                    a
                },
            ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: Mat<f64>, b: Mat<f64>) -> Vec<f64> {
        let mut out = vec![0.0; a.rows * b.cols];
        for i in 0..a.rows {
            for j in 0..b.cols {
                for k in 0..a.cols {
                    out[i * b.cols + j] +=
                        a.data[i * a.rs + k * a.cs] * b.data[k * b.rs + j * b.cs];
                }
            }
        }
        out
    }

    #[test]
    fn matches_naive_with_transposes_and_accumulation() {
        let av: Vec<f64> = (0..35).map(|i| (i as f64 * 0.37).sin()).collect();
        let bv: Vec<f64> = (0..28).map(|i| (i as f64 * 0.91).cos()).collect();
        let a = Mat::row_major(&av, 5, 7);
        let b = Mat::row_major(&bv, 4, 7).t();
        let want = naive(a, b);
        for t in [Threads::One, Threads::Pool] {
            let mut got = vec![f64::NAN; 20];
            matmul(&mut got, a, b, false, t);
            for (g, w) in got.iter().zip(&want) {
                assert!((g - w).abs() < 1e-12, "{g} vs {w}");
            }
            matmul(&mut got, a, b, true, t);
            for (g, w) in got.iter().zip(&want) {
                assert!((g - 2.0 * w).abs() < 1e-12, "{g} vs {}", 2.0 * w);
            }
        }
    }
}
