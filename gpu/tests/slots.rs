//! NV12 slots: a room's picture where an encoder on another API registers it once. Each job that
//! names a slot leaves its NV12 picture there, whatever the batch's order; the slot's memory
//! stays the same from batch to batch, can be exported, and bad slot use is refused before
//! anything is submitted.

// The ring is raw shared memory: handing it to `Converter::import` is unsafe.
#![allow(unsafe_code)]

mod common;

use common::{lay_out, nv12_of, open, outputs, reference, Ring, Spec};
use retrofarm_gpu::{Job, SlotInfo};
use retrofarm_media::PixelFormat::{Rgb565, Xrgb8888};

const ROOMS: [Spec; 3] = [
    Spec::new(Xrgb8888, 256, 240, 0, 1, None),
    Spec::new(Rgb565, 240, 160, 16, 2, None),
    Spec::new(Rgb565, 160, 144, 2, 1, Some((256, 240))),
];

/// The slot's NV12 picture, tightly packed, read through its host mapping.
fn mapped(info: &SlotInfo) -> Option<Vec<u8>> {
    let base = info.host_address? as *const u8;
    let (w, h, pitch) = (info.width as usize, info.height as usize, info.pitch as usize);
    let mut out = Vec::with_capacity(w * h * 3 / 2);
    for row in 0..h + h / 2 {
        // SAFETY: the slot is mapped for `pitch * height * 3 / 2` bytes while it exists, and
        // the converter waited for the batch that wrote it.
        out.extend_from_slice(unsafe { std::slice::from_raw_parts(base.add(row * pitch), w) });
    }
    Some(out)
}

#[test]
fn every_slot_holds_its_rooms_latest_picture_across_batches() {
    let Some(mut converter) = open() else { return };
    let mut ring = Ring::new(4 << 20);
    let offsets = lay_out(&mut ring, &ROOMS, 4096, 3, 11);
    // SAFETY: the ring outlives the converter's use of it (released below).
    let source = unsafe { converter.import(ring.ptr(), ring.len()) }.expect("import");
    let jobs: Vec<Job> = ROOMS.iter().zip(&offsets).map(|(s, &o)| s.job(source, o)).collect();
    let slots: Vec<_> = jobs
        .iter()
        .map(|j| converter.create_slot(j.placement.width, j.placement.height).expect("create slot"))
        .collect();
    let infos: Vec<SlotInfo> = slots.iter().map(|s| converter.slot(*s).expect("slot info")).collect();
    for info in &infos {
        assert!(info.pitch >= info.width && info.pitch % 8 == 0, "{info:?}");
        assert!(info.size >= info.nv12_bytes(), "{info:?}");
        assert!(info.exportable || info.host_address.is_some(), "reachable by another API: {info:?}");
    }

    // Batch 1: rooms 0, 1, 2. Then new pictures for rooms 0 and 2, and batch 2 in another order
    // without room 1, whose slot keeps its picture of batch 1.
    let mut want: Vec<Vec<u8>> = vec![Vec::new(); jobs.len()];
    for (batch, order) in [vec![0, 1, 2], vec![2, 0]].into_iter().enumerate() {
        if batch == 1 {
            ring.bytes_mut()[offsets[0]..offsets[0] + 4096].fill(0x5a);
            ring.bytes_mut()[offsets[2]..offsets[2] + 4096].fill(0xa5);
        }
        let jobs_now: Vec<Job> = order.iter().map(|&i| Job { slot: Some(slots[i]), ..jobs[i] }).collect();
        let mut out = outputs(jobs_now.len());
        converter.convert(&jobs_now, &mut out).expect("convert");
        for (&room, got) in order.iter().zip(&out) {
            let reference = reference(ring.bytes(), &jobs[room]);
            assert!(got == &reference, "batch {batch} room {room}: the I420 readback is right");
            want[room] = nv12_of(&reference);
        }
    }
    let mut nv12 = Vec::new();
    for (room, (slot, info)) in slots.iter().zip(&infos).enumerate() {
        let read = converter.read_slot(*slot, &mut nv12).expect("read slot");
        assert_eq!(read, *info, "the slot's memory stays the same");
        assert!(nv12 == want[room], "room {room}: the slot holds the room's latest picture");
        if let Some(bytes) = mapped(info) {
            assert!(bytes == nv12, "room {room}: the host mapping shows it too");
        }
    }
    converter.release(source);
    for slot in slots {
        converter.release_slot(slot);
        assert!(converter.slot(slot).is_none());
    }
}

#[test]
fn a_slot_gets_exactly_its_jobs_nv12_picture() {
    let Some(mut converter) = open() else { return };
    let mut ring = Ring::new(4 << 20);
    let offsets = lay_out(&mut ring, &ROOMS, 4096, 3, 5);
    // SAFETY: as above.
    let source = unsafe { converter.import(ring.ptr(), ring.len()) }.expect("import");
    for (i, (spec, &offset)) in ROOMS.iter().zip(&offsets).enumerate() {
        let job = spec.job(source, offset);
        let slot = converter.create_slot(job.placement.width, job.placement.height).expect("slot");
        let mut out = outputs(1);
        converter.convert(&[Job { slot: Some(slot), ..job }], &mut out).expect("convert");
        let want = nv12_of(&reference(ring.bytes(), &job));
        let mut got = Vec::new();
        converter.read_slot(slot, &mut got).expect("read slot");
        assert!(got == want, "room {i}: the slot holds the NV12 of the CPU reference");
        let info = converter.slot(slot).unwrap();
        if let Some(bytes) = mapped(&info) {
            assert!(bytes == want, "room {i}: and so does its host mapping");
        }
        if info.exportable {
            let a = converter.export_slot_fd(slot).expect("export");
            let b = converter.export_slot_fd(slot).expect("export again");
            assert_ne!(std::os::fd::AsRawFd::as_raw_fd(&a), std::os::fd::AsRawFd::as_raw_fd(&b));
        }
        converter.release_slot(slot);
    }
    converter.release(source);
}

#[test]
fn bad_slots_are_refused_before_anything_runs() {
    let Some(mut converter) = open() else { return };
    for (w, h) in [(0, 240), (255, 240), (256, 0), (256, 241), (100_000, 2)] {
        let err = converter.create_slot(w, h).unwrap_err();
        assert!(err.to_string().contains("unsupported picture size"), "{w}x{h}: {err}");
    }
    let mut ring = Ring::new(1 << 20);
    let offsets = lay_out(&mut ring, &ROOMS[..1], 4096, 0, 1);
    // SAFETY: as above.
    let source = unsafe { converter.import(ring.ptr(), ring.len()) }.expect("import");
    let job = ROOMS[0].job(source, offsets[0]);
    let small = converter.create_slot(160, 144).expect("slot");
    let err = converter.convert(&[Job { slot: Some(small), ..job }], &mut outputs(1)).unwrap_err();
    assert!(err.is_bad_job() && err.to_string().contains("holds 160x144 pictures"), "{err}");
    converter.release_slot(small);
    let err = converter.convert(&[Job { slot: Some(small), ..job }], &mut outputs(1)).unwrap_err();
    assert!(err.is_bad_job() && err.to_string().contains("does not exist"), "{err}");
    assert!(converter.read_slot(small, &mut Vec::new()).is_err());
    assert!(converter.export_slot_fd(small).is_err());
    // The converter is fine after the refusals.
    converter.convert(&[job], &mut outputs(1)).expect("convert");
    converter.release(source);
}
