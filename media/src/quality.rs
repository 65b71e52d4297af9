//! Picture quality: PSNR of one plane against another, as every test and benchmark of an
//! encoder measures it.

/// PSNR in dB of the `width x height` plane `b` against `a` (rows `a_stride` and `b_stride`
/// bytes apart); infinite when they are equal.
pub fn psnr_plane(a: &[u8], a_stride: usize, b: &[u8], b_stride: usize, width: usize, height: usize) -> f64 {
    let mut squared = 0u64;
    for row in 0..height {
        let x = &a[row * a_stride..][..width];
        let y = &b[row * b_stride..][..width];
        squared += x.iter().zip(y).map(|(&p, &q)| u64::from(p.abs_diff(q)).pow(2)).sum::<u64>();
    }
    let mse = squared as f64 / (width * height).max(1) as f64;
    if mse == 0.0 {
        return f64::INFINITY;
    }
    10.0 * (255.0 * 255.0 / mse).log10()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_planes_are_infinite_and_padding_is_ignored() {
        let a = [10u8, 20, 99, 30, 40, 99];
        let b = [10u8, 20, 30, 40];
        assert_eq!(psnr_plane(&a, 3, &b, 2, 2, 2), f64::INFINITY);
        // One sample off by 16 of four: MSE 64, 10·log10(65025 / 64) ≈ 30.07 dB.
        let c = [10u8, 20, 30, 56];
        assert!((psnr_plane(&b, 2, &c, 2, 2, 2) - 30.069).abs() < 0.01);
    }
}
