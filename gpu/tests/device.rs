//! Device choice, the capability report, and the exportable output memory.

// Checking the exported fd takes a system call.
#![allow(unsafe_code)]

mod common;

use std::os::fd::AsRawFd;

use common::{lay_out, open, outputs, Ring, Spec};
use retrofarm_gpu::{Converter, DeviceChoice, GpuError};
use retrofarm_media::PixelFormat;

#[test]
fn hardware_choice_refuses_a_cpu_device_with_a_clear_message() {
    let Some(any) = open() else { return };
    let info = any.device().clone();
    drop(any);
    match Converter::open(DeviceChoice::Hardware) {
        Ok(hw) => {
            assert!(hw.device().kind.is_hardware(), "{}", hw.device());
            println!("hardware device: {}", hw.device());
        }
        Err(err) => {
            assert!(!info.kind.is_hardware(), "{info} is hardware, yet: {err}");
            let message = err.to_string();
            println!("{message}");
            assert!(matches!(err, GpuError::NoHardwareDevice { .. }), "{message}");
            assert!(message.contains(&info.name), "{message}");
            assert!(message.contains("CPU") && message.contains("gpu = \"off\""), "{message}");
            assert!(!err.is_device_lost());
        }
    }
}

#[test]
fn the_device_report_is_one_line() {
    let Some(converter) = open() else { return };
    let info = converter.device();
    let line = info.to_string();
    assert!(line.starts_with(&format!("vulkan device {}: {} (", info.index, info.name)), "{line}");
    assert!(line.contains(&format!("driver {}", info.driver)), "{line}");
    assert!(line.contains("host import ") && line.contains("fd export "), "{line}");
    assert!(!line.contains('\n'));
    // The UUID a CUDA stage matches its device by.
    assert_ne!(info.uuid, [0; 16], "{line}: deviceUUID is reported");
    assert_eq!(Converter::open(DeviceChoice::Any).unwrap().device().uuid, info.uuid, "stable across opens");
}

#[test]
fn the_output_memory_exports_as_an_opaque_fd() {
    let Some(mut converter) = open() else { return };
    let memory = converter.output_memory();
    if !converter.device().export_fd {
        assert!(!memory.exportable);
        let err = converter.export_output_fd().expect_err("no export");
        println!("skipping: {err}");
        return;
    }
    assert!(memory.exportable && memory.size > 0);
    let check = |fd: &std::os::fd::OwnedFd| {
        // SAFETY: fstat into a zeroed struct on an fd we own.
        let mut stat: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        let rc = unsafe { libc::fstat(fd.as_raw_fd(), &mut stat) };
        assert_eq!(rc, 0, "fstat: {}", std::io::Error::last_os_error());
    };
    check(&converter.export_output_fd().expect("export before any batch"));

    // A batch larger than the initial memory replaces it: a new generation to export.
    let big = Spec::new(PixelFormat::Xrgb8888, 256, 240, 0, 4, None);
    let mut ring = Ring::new(4 << 20);
    let offsets = lay_out(&mut ring, &[big, big], 0, 0, 51);
    // SAFETY: the ring outlives the import.
    let source = unsafe { converter.import(ring.ptr(), ring.len()) }.expect("import");
    let jobs = [big.job(source, offsets[0]), big.job(source, offsets[1])];
    converter.convert(&jobs, &mut outputs(2)).expect("convert");
    let grown = converter.output_memory();
    assert!(grown.generation > memory.generation && grown.size > memory.size);
    check(&converter.export_output_fd().expect("export after the batch"));
    let layout = converter.nv12_layout(1).expect("job 1");
    assert_eq!((layout.width, layout.height, layout.pitch), (1024, 960, 1024));
    assert!(layout.offset_uv + u64::from(layout.pitch) * u64::from(layout.height) / 2 <= grown.size);
    assert!(layout.offset_y % 256 == 0 && layout.offset_uv % 4 == 0);
    assert!(converter.nv12_layout(2).is_none());
    converter.release(source);
}
