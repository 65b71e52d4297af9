//! Host memory import of the frame ring, the staging fallback, and bad jobs.

// The ring is raw shared memory: handing it to `Converter::import` is unsafe.
#![allow(unsafe_code)]

mod common;

use common::{assert_same, lay_out, open, outputs, reference, Ring, Rng, Spec};
use retrofarm_gpu::{GpuError, Job, SourceMode};
use retrofarm_media::{PixelFormat, Placement};

const NES: Spec = Spec::new(PixelFormat::Xrgb8888, 256, 240, 0, 2, Some((640, 480)));

#[test]
fn an_imported_ring_shows_frames_written_after_the_import() {
    let Some(mut converter) = open() else { return };
    let mut ring = Ring::new(1 << 20);
    let offsets = lay_out(&mut ring, &[NES], 4096 + 8, 0, 11);
    // SAFETY: the ring outlives the import (released below, before the ring is unmapped).
    let source = unsafe { converter.import(ring.ptr(), ring.len()) }.expect("import");
    let mode = converter.source_mode(source);
    if converter.device().host_import {
        assert_eq!(mode, Some(SourceMode::HostImport), "{:?}", converter.staging_reason(source));
    } else {
        println!("no host import on this device: {:?}", converter.staging_reason(source));
        assert_eq!(mode, Some(SourceMode::Staging));
    }
    let job = NES.job(source, offsets[0]);
    let mut out = outputs(1);
    let report = converter.convert(&[job], &mut out).expect("first frame");
    if mode == Some(SourceMode::HostImport) {
        assert_eq!(report.staged_bytes, 0, "an imported frame is not staged");
    }
    let first = reference(ring.bytes(), &job);
    assert_same("first frame", &out[0], &first);

    // The emulator writes the next frame into the same memory; no re-import.
    Rng::new(12).fill(&mut ring.bytes_mut()[job.offset..job.offset + job.frame_bytes()]);
    let second = reference(ring.bytes(), &job);
    assert_ne!(first, second);
    converter.convert(&[job], &mut out).expect("second frame");
    assert_same("second frame", &out[0], &second);

    converter.release(source);
    assert_eq!(converter.source_mode(source), None);
    let err = converter.convert(&[job], &mut out).expect_err("released source");
    assert!(matches!(err, GpuError::UnknownSource { index: 0, .. }), "{err}");
    assert!(err.is_bad_job() && !err.is_device_lost());
}

#[test]
fn a_misaligned_region_is_staged_and_still_converts() {
    let Some(mut converter) = open() else { return };
    let mut ring = Ring::new(1 << 20);
    let offsets = lay_out(&mut ring, &[NES], 100, 0, 21);
    // SAFETY: the ring outlives the import.
    let source = unsafe { converter.import(ring.ptr().wrapping_add(1), ring.len() - 1) }.expect("import");
    assert_eq!(converter.source_mode(source), Some(SourceMode::Staging));
    if converter.device().host_import {
        let why = converter.staging_reason(source).expect("a reason");
        assert!(why.contains("aligned"), "{why}");
    }
    let job = NES.job(source, offsets[0] - 1);
    let mut out = outputs(1);
    let report = converter.convert(&[job], &mut out).expect("convert");
    assert_eq!(report.staged_bytes, job.frame_bytes() as u64);
    assert_same("staged", &out[0], &reference(&ring.bytes()[1..], &job));
    // The next frame is picked up too (staged afresh each call).
    Rng::new(22).fill(&mut ring.bytes_mut()[1 + job.offset..1 + job.offset + job.frame_bytes()]);
    converter.convert(&[job], &mut out).expect("convert");
    assert_same("staged, next frame", &out[0], &reference(&ring.bytes()[1..], &job));
    converter.release(source);
}

#[test]
fn a_region_not_a_multiple_of_the_alignment_stages_only_frames_past_the_imported_part() {
    let Some(mut converter) = open() else { return };
    if !converter.device().host_import {
        println!("skipping: no host import on {}", converter.device().name);
        return;
    }
    let small = Spec::new(PixelFormat::Rgb565, 64, 32, 0, 1, None); // 4096 bytes
    let mut ring = Ring::new(1 << 20);
    lay_out(&mut ring, &[], 0, 0, 31);
    let len = 3 * 4096 + 100; // imported: the first 12288 bytes
                              // SAFETY: the ring (1 MiB) outlives the import and covers `len`.
    let source = unsafe { converter.import(ring.ptr(), len) }.expect("import");
    assert_eq!(converter.source_mode(source), Some(SourceMode::HostImport));
    let inside = small.job(source, 4096);
    let across = small.job(source, 2 * 4096 + 50); // ends at 12338, past 12288
    let mut out = outputs(2);
    let report = converter.convert(&[inside, across], &mut out).expect("convert");
    assert_eq!(report.staged_bytes, across.frame_bytes() as u64);
    assert_same("inside", &out[0], &reference(ring.bytes(), &inside));
    assert_same("across", &out[1], &reference(ring.bytes(), &across));
    let beyond = small.job(source, len - 100);
    let err = converter.convert(&[beyond], &mut out[..1]).expect_err("outside the region");
    assert!(matches!(err, GpuError::BadJob { index: 0, .. }), "{err}");
    converter.release(source);
}

#[test]
fn bad_jobs_are_refused_and_the_converter_goes_on() {
    let Some(mut converter) = open() else { return };
    let mut ring = Ring::new(1 << 20);
    let offsets = lay_out(&mut ring, &[NES], 0, 0, 41);
    // SAFETY: the ring outlives the import.
    let source = unsafe { converter.import(ring.ptr(), ring.len()) }.expect("import");
    let good = NES.job(source, offsets[0]);
    let mut out = outputs(2);
    let cases = [
        ("stride", Job { stride: 100, ..good }),
        ("outside", Job { offset: ring.len() - 1000, ..good }),
        ("size", Job { width: 0, ..good }),
        ("placement", Job { placement: Placement::new(128, 120, 1, None).unwrap(), ..good }),
        ("scale", Job { placement: Placement { scale: 5, ..good.placement }, ..good }),
        ("canvas", Job { placement: Placement { width: 300, ..good.placement }, ..good }),
    ];
    for (what, bad) in cases {
        let err = converter.convert(&[good, bad], &mut out).expect_err(what);
        assert!(matches!(err, GpuError::BadJob { index: 1, .. }), "{what}: {err}");
        println!("{what}: {err}");
    }
    let err = converter.convert(&[good], &mut out).expect_err("output count");
    assert!(matches!(err, GpuError::OutputCount { jobs: 1, outputs: 2 }), "{err}");
    converter.convert(&[good, good], &mut out).expect("good jobs after bad ones");
    assert_same("after errors", &out[1], &reference(ring.bytes(), &good));
    converter.release(source);
}
