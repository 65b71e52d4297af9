//! Game audio to Opus: resampling from the core's rate to 48 kHz with rubato, then Opus.
//!
//! Samples arrive as interleaved stereo `i16` at the core's rate, in blocks of any size (a core
//! emits about one video frame's worth at a time). They are resampled to 48 kHz stereo with an
//! asynchronous sinc resampler (any rate, integer or not; 48 kHz input skips it), cut into
//! Opus frames of 20 ms (or 10 ms) and encoded. The resampler's start-up delay is dropped, so
//! output sample `n` is input time `n / 48000 s`, and each packet's timestamp is the 48 kHz
//! index of its first sample: the RTP timestamp, once an offset is added.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Async, FixedAsync, Resampler, SincInterpolationParameters, SincInterpolationType, WindowFunction};

/// The Opus (and WebRTC) sample rate.
pub const OUTPUT_RATE: u32 = 48_000;
/// Channels in and out.
pub const CHANNELS: usize = 2;

/// Length of one Opus frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OpusFrameDuration {
    /// 10 ms: 10 ms less latency, twice the packets.
    Ms10,
    /// 20 ms: WebRTC's usual ptime; the default.
    #[default]
    Ms20,
}

impl OpusFrameDuration {
    /// Samples per channel at 48 kHz.
    pub const fn samples(self) -> usize {
        match self {
            OpusFrameDuration::Ms10 => 480,
            OpusFrameDuration::Ms20 => 960,
        }
    }
}

/// Audio encoder settings.
#[derive(Debug, Clone, PartialEq)]
pub struct AudioConfig {
    /// The core's sample rate in Hz (libretro's `sample_rate`, not always an integer).
    pub source_rate: f64,
    /// Opus bitrate in bits per second.
    pub bitrate_bps: i32,
    /// Opus complexity, 0 (fastest) to 10.
    pub complexity: i32,
    /// Opus frame length.
    pub frame: OpusFrameDuration,
}

impl AudioConfig {
    /// The defaults (96 kbps, complexity 0, 20 ms frames) for a core running at `source_rate`:
    /// complexity 0 costs 40 % less than 5 for the same fidelity on game audio (`bench/` `audio`).
    pub fn new(source_rate: f64) -> Self {
        AudioConfig { source_rate, bitrate_bps: 96_000, complexity: 0, frame: OpusFrameDuration::Ms20 }
    }
}

/// Why audio could not be encoded.
#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    /// The source rate is not usable (must be between 1 kHz and 384 kHz).
    #[error("unsupported source sample rate {0} Hz")]
    BadSourceRate(f64),
    /// Interleaved stereo needs an even number of samples.
    #[error("{0} samples is not a whole number of stereo frames")]
    PartialFrame(usize),
    /// Opus refused the settings or a frame.
    #[error("opus: {0}")]
    Opus(#[from] opus::Error),
    /// The resampler could not be built.
    #[error("resampler setup: {0}")]
    ResamplerSetup(#[from] rubato::ResamplerConstructionError),
    /// A buffer handed to the resampler had the wrong size (a bug here, not bad input).
    #[error("resampler buffer size mismatch")]
    BufferSize,
    /// The resampler failed on a chunk.
    #[error("resampling: {0}")]
    Resample(#[from] rubato::ResampleError),
}

/// One encoded Opus packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpusPacket {
    /// The Opus packet.
    pub data: Vec<u8>,
    /// 48 kHz index of its first sample, counted from the first sample pushed.
    pub timestamp: u64,
    /// Samples per channel at 48 kHz (960 for 20 ms).
    pub duration: u32,
}

/// Time spent by one [`AudioEncoder::push`] or [`AudioEncoder::flush`] call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AudioTiming {
    /// In the resampler (zero at 48 kHz input).
    pub resample: Duration,
    /// In the Opus encoder.
    pub encode: Duration,
    /// Packets finished by the call.
    pub packets: usize,
}

/// Interleaved-stereo rate conversion with a fixed input chunk.
struct Resampling {
    resampler: Async<f32>,
    chunk: usize,
    /// Output scratch for one call.
    out: Vec<f32>,
    /// Output frames still to drop: the resampler's start-up delay.
    to_drop: usize,
    /// Source frames pushed so far.
    frames_in: u64,
    /// 48 kHz frames kept so far.
    frames_out: u64,
}

/// Resamples and encodes one stream of game audio.
pub struct AudioEncoder {
    config: AudioConfig,
    resampling: Option<Resampling>,
    /// Interleaved source-rate samples waiting for a whole resampler chunk.
    pending_in: Vec<f32>,
    /// Interleaved 48 kHz samples waiting for a whole Opus frame.
    pending_out: Vec<f32>,
    opus: opus::Encoder,
    scratch: Vec<u8>,
    ready: VecDeque<OpusPacket>,
    next_timestamp: u64,
    /// Consecutive frames whose two channels were identical.
    mono_run: u32,
    /// Whether Opus is told to code one channel.
    mono: bool,
}

/// Frames of identical channels (1 s at 20 ms) before the encoder codes one channel.
const MONO_AFTER: u32 = 50;

impl std::fmt::Debug for AudioEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AudioEncoder")
            .field("config", &self.config)
            .field("resampling", &self.resampling.is_some())
            .field("next_timestamp", &self.next_timestamp)
            .field("ready", &self.ready.len())
            .finish_non_exhaustive()
    }
}

/// Opus's largest packet is 1275 bytes per 20 ms frame.
const MAX_PACKET: usize = 1500;

impl AudioEncoder {
    /// Makes an encoder for a core running at `config.source_rate`.
    pub fn new(config: AudioConfig) -> Result<Self, AudioError> {
        let rate = config.source_rate;
        if !(rate.is_finite() && (1_000.0..=384_000.0).contains(&rate)) {
            return Err(AudioError::BadSourceRate(rate));
        }
        let resampling = if rate == f64::from(OUTPUT_RATE) {
            None
        } else {
            // 5 ms of input per call: small enough to add little latency, large enough that the
            // per-call overhead stays small. A 64-tap sinc keeps the filter delay near 1 ms;
            // the Blackman² window puts the pass band up to 85% of the source's Nyquist
            // (14 kHz at 32768 Hz), and linear interpolation between 256 sub-sample phases
            // costs two thirds of cubic for the same measured SNR.
            let chunk = ((rate / 200.0).round() as usize).max(16);
            let parameters = SincInterpolationParameters::new(64, WindowFunction::Blackman2)
                .interpolation(SincInterpolationType::Linear)
                .oversampling_factor(256);
            let resampler = Async::<f32>::new_sinc(
                f64::from(OUTPUT_RATE) / rate,
                1.0,
                &parameters,
                chunk,
                CHANNELS,
                FixedAsync::Input,
            )?;
            Some(Resampling {
                chunk,
                out: vec![0.0; resampler.output_frames_max() * CHANNELS],
                to_drop: resampler.output_delay(),
                resampler,
                frames_in: 0,
                frames_out: 0,
            })
        };
        let mut opus = opus::Encoder::new(OUTPUT_RATE, opus::Channels::Stereo, opus::Application::LowDelay)?;
        opus.set_bitrate(opus::Bitrate::Bits(config.bitrate_bps))?;
        opus.set_complexity(config.complexity)?;
        let frame_samples = config.frame.samples() * CHANNELS;
        Ok(AudioEncoder {
            resampling,
            pending_in: Vec::with_capacity(8192),
            pending_out: Vec::with_capacity(frame_samples * 2),
            opus,
            scratch: vec![0; MAX_PACKET],
            ready: VecDeque::new(),
            next_timestamp: 0,
            mono_run: 0,
            mono: false,
            config,
        })
    }

    /// The settings in use.
    pub fn config(&self) -> &AudioConfig {
        &self.config
    }

    /// Whether input is resampled (false when the core already runs at 48 kHz).
    pub fn is_resampling(&self) -> bool {
        self.resampling.is_some()
    }

    /// Adds interleaved stereo samples at the source rate (L, R, L, R, ...), any number of frames.
    /// Packets finished by them are queued for [`pop`](Self::pop).
    pub fn push(&mut self, interleaved: &[i16]) -> Result<AudioTiming, AudioError> {
        if !interleaved.len().is_multiple_of(CHANNELS) {
            return Err(AudioError::PartialFrame(interleaved.len()));
        }
        let mut timing = AudioTiming::default();
        let samples = interleaved.iter().map(|&s| f32::from(s) * (1.0 / 32768.0));
        match self.resampling {
            None => self.pending_out.extend(samples),
            Some(ref mut r) => {
                self.pending_in.extend(samples);
                r.frames_in += (interleaved.len() / CHANNELS) as u64;
                let started = Instant::now();
                resample_pending(r, &mut self.pending_in, &mut self.pending_out)?;
                timing.resample = started.elapsed();
            }
        }
        self.encode_pending(&mut timing)?;
        Ok(timing)
    }

    /// Ends the stream: pushes everything still buffered through, padding with silence up to
    /// the end of the last Opus frame. Samples pushed after it follow that padding.
    pub fn flush(&mut self) -> Result<AudioTiming, AudioError> {
        let mut timing = AudioTiming::default();
        if let Some(ref mut r) = self.resampling {
            let started = Instant::now();
            let rate = self.config.source_rate;
            let expected = (r.frames_in as f64 * f64::from(OUTPUT_RATE) / rate).round() as u64;
            while r.frames_out < expected {
                let missing = r.chunk * CHANNELS - self.pending_in.len() % (r.chunk * CHANNELS);
                self.pending_in.extend(std::iter::repeat_n(0.0, missing));
                resample_pending(r, &mut self.pending_in, &mut self.pending_out)?;
            }
            // Drop what the silence produced past the real input, then start afresh.
            let surplus = (r.frames_out - expected) as usize * CHANNELS;
            self.pending_out.truncate(self.pending_out.len().saturating_sub(surplus));
            self.pending_in.clear();
            r.resampler.reset();
            r.to_drop = r.resampler.output_delay();
            r.frames_in = 0;
            r.frames_out = 0;
            timing.resample = started.elapsed();
        }
        let frame = self.config.frame.samples() * CHANNELS;
        let partial = self.pending_out.len() % frame;
        if partial != 0 {
            self.pending_out.extend(std::iter::repeat_n(0.0, frame - partial));
        }
        self.encode_pending(&mut timing)?;
        Ok(timing)
    }

    /// The next finished packet, oldest first.
    pub fn pop(&mut self) -> Option<OpusPacket> {
        self.ready.pop_front()
    }

    /// Input received but not yet in a packet, as 48 kHz frames (the encoder's added latency,
    /// apart from Opus's own 2.5 ms look-ahead).
    pub fn buffered_frames(&self) -> usize {
        let pending_in = match self.resampling {
            Some(ref r) => {
                (self.pending_in.len() / CHANNELS) as f64 * f64::from(OUTPUT_RATE) / self.config.source_rate
                    + r.resampler.output_delay() as f64
            }
            None => 0.0,
        };
        self.pending_out.len() / CHANNELS + pending_in.round() as usize
    }

    fn encode_pending(&mut self, timing: &mut AudioTiming) -> Result<(), AudioError> {
        let frame_samples = self.config.frame.samples();
        let frame = frame_samples * CHANNELS;
        if self.pending_out.len() < frame {
            return Ok(());
        }
        let started = Instant::now();
        let mut used = 0;
        while self.pending_out.len() - used >= frame {
            let samples = &self.pending_out[used..used + frame];
            let identical = samples.chunks_exact(CHANNELS).all(|lr| lr[0] == lr[1]);
            self.follow_channels(identical)?;
            let len = self.opus.encode_float(&self.pending_out[used..used + frame], &mut self.scratch)?;
            self.ready.push_back(OpusPacket {
                data: self.scratch[..len].to_vec(),
                timestamp: self.next_timestamp,
                duration: frame_samples as u32,
            });
            self.next_timestamp += frame_samples as u64;
            used += frame;
            timing.packets += 1;
        }
        self.pending_out.drain(..used);
        timing.encode += started.elapsed();
        Ok(())
    }

    /// Whether Opus currently codes one channel (the source has been mono for a while).
    pub fn is_coding_mono(&self) -> bool {
        self.mono
    }

    /// Codes one channel while the source is mono (NES cores write the same sample to both):
    /// half the work for the same sound. `identical`: this frame's two channels are the same.
    /// Stereo comes back with the first frame whose channels differ. Packets stay valid in the
    /// negotiated stereo stream (RFC 7587 lets every packet be mono or stereo).
    fn follow_channels(&mut self, identical: bool) -> Result<(), AudioError> {
        self.mono_run = if identical { self.mono_run.saturating_add(1) } else { 0 };
        let mono = self.mono_run >= MONO_AFTER;
        if mono != self.mono {
            self.opus.set_force_channels(mono.then_some(opus::Channels::Mono))?;
            self.mono = mono;
        }
        Ok(())
    }
}

/// Runs every whole chunk of `pending_in` through the resampler, appending to `pending_out`.
fn resample_pending(
    r: &mut Resampling,
    pending_in: &mut Vec<f32>,
    pending_out: &mut Vec<f32>,
) -> Result<(), AudioError> {
    let chunk_samples = r.chunk * CHANNELS;
    let mut used = 0;
    while pending_in.len() - used >= chunk_samples {
        let input = InterleavedSlice::new(&pending_in[used..used + chunk_samples], CHANNELS, r.chunk)
            .map_err(|_| AudioError::BufferSize)?;
        let out_frames = r.out.len() / CHANNELS;
        let mut output =
            InterleavedSlice::new_mut(&mut r.out[..], CHANNELS, out_frames).map_err(|_| AudioError::BufferSize)?;
        let (_, written) = r.resampler.process_into_buffer(&input, &mut output, None)?;
        let skip = r.to_drop.min(written);
        r.to_drop -= skip;
        pending_out.extend_from_slice(&r.out[skip * CHANNELS..written * CHANNELS]);
        r.frames_out += (written - skip) as u64;
        used += chunk_samples;
    }
    pending_in.drain(..used);
    Ok(())
}
