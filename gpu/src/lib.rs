//! retrofarm-gpu: colour conversion of many rooms' frames at once on a Vulkan device.
//!
//! One [`Converter`] per GPU turns a batch of emulator frames (one per room: XRGB8888, RGB565
//! or XRGB1555, any size, scaled and letterboxed by a [`Placement`](retrofarm_media::Placement))
//! into BT.601 limited-range I420 and NV12, equal byte for byte to
//! [`retrofarm_media::convert_placed`], the CPU reference.
//!
//! # Data flow
//!
//! ```text
//!  frame ring (memfd, mmap'd by the worker)
//!     │  Converter::import, once: VK_EXT_external_memory_host makes the ring a VkBuffer
//!     │  (else: each frame memcpy'd into a staging buffer)
//!     ▼
//!  vkCmdCopyBuffer of each job's frame ──► arena (device-local, word-aligned frames)
//!     │  barrier
//!     ▼
//!  ONE vkCmdDispatch for all jobs (shaders/convert.wgsl: an 8x2 luma block per invocation,
//!     │  z = job) writes Y, U, V and interleaved UV of every job
//!     ▼
//!  output planes, in memory exportable as an OPAQUE_FD ──► (later) CUDA/NVENC imports them:
//!     │  barrier                                            Converter::export_output_fd,
//!     ▼                                                     Converter::nv12_layout
//!  vkCmdCopyBuffer of the I420 planes ──► readback buffer (host-visible)
//!     │  fence
//!     ▼
//!  rows copied into each I420Frame ──► software encoders (OpenH264, libvpx)
//! ```
//!
//! Everything goes in one command buffer and one submission per batch;
//! [`Converter::convert_each`] submits job by job, as the baseline the batch is measured
//! against. Every call waits for its fence, so nothing is in flight between calls.
//!
//! # Modules
//!
//! - `device`: loading `libvulkan.so.1` at run time (the binary does not link it), choosing a
//!   device ([`DeviceChoice`]) and opening it;
//! - `memory`: buffers, host-pointer imports ([`SourceId`], [`SourceMode`]), exportable memory;
//! - `layout`: where each job's planes lie ([`Nv12Layout`]);
//! - `slot`: NV12 slots, pictures that stay put for an encoder on another API ([`SlotId`]);
//! - `shader`: the SPIR-V that `build.rs` compiles from `shaders/convert.wgsl` with naga, its
//!   pipeline and job records;
//! - `batch`: the [`Converter`].
//!
//! Frames are read as little-endian words, as every GPU does, so the native-endian pixel
//! formats are read right on little-endian hosts (all the worker runs on).
//!
//! Tests run on any Vulkan 1.1 device, Mesa's lavapipe (llvmpipe) included, and skip when
//! there is none. `RETROFARM_GPU_VALIDATION=1` enables the Khronos validation layer when it is
//! installed.

#![warn(missing_docs)]
// Vulkan is a C API: every call through ash is `unsafe`. The unsafe code is confined to this
// crate, each block says why it is sound (`// SAFETY:`), and the public API is safe except
// `Converter::import`, which takes a raw pointer to the frame ring.
#![allow(unsafe_code)]

mod batch;
mod device;
mod error;
mod layout;
mod memory;
mod shader;
mod slot;

pub use batch::{BatchReport, Converter, GpuTimer, Job, OutputMemory};
pub use device::{DeviceChoice, DeviceInfo, DeviceKind};
pub use error::GpuError;
pub use layout::Nv12Layout;
pub use memory::{SourceId, SourceMode};
pub use slot::{SlotId, SlotInfo};
