//! Push a sine through resampling and Opus, decode it with libopus, and check packet count,
//! timestamps, pitch and level.

use std::f64::consts::TAU;

use retrofarm_media::{AudioConfig, AudioEncoder, AudioError, OpusFrameDuration, OpusPacket};

const LEFT_AMPLITUDE: f64 = 0.5;
const RIGHT_AMPLITUDE: f64 = 0.25;

/// One second of 440 Hz stereo (right channel at half the level), interleaved.
fn sine(rate: u32, seconds: f64, freq: f64) -> Vec<i16> {
    let frames = (f64::from(rate) * seconds).round() as usize;
    let mut out = Vec::with_capacity(frames * 2);
    for n in 0..frames {
        let s = (TAU * freq * n as f64 / f64::from(rate)).sin();
        out.push((s * LEFT_AMPLITUDE * 32767.0) as i16);
        out.push((s * RIGHT_AMPLITUDE * 32767.0) as i16);
    }
    out
}

/// Pushes `samples` in chunks of awkward, varying sizes (in stereo frames).
fn push_in_odd_chunks(encoder: &mut AudioEncoder, samples: &[i16]) {
    let sizes = [1usize, 7, 333, 547, 13, 1021, 89, 2, 611];
    let mut at = 0;
    for size in sizes.iter().cycle() {
        if at >= samples.len() {
            break;
        }
        let end = (at + size * 2).min(samples.len());
        encoder.push(&samples[at..end]).unwrap();
        at = end;
    }
}

fn drain(encoder: &mut AudioEncoder) -> Vec<OpusPacket> {
    std::iter::from_fn(|| encoder.pop()).collect()
}

/// Decodes packets into (left, right) at 48 kHz.
fn decode(packets: &[OpusPacket]) -> (Vec<f64>, Vec<f64>) {
    let mut decoder = opus::Decoder::new(48_000, opus::Channels::Stereo).unwrap();
    let (mut left, mut right) = (Vec::new(), Vec::new());
    let mut pcm = vec![0i16; 5760 * 2];
    for packet in packets {
        let n = decoder.decode(&packet.data, &mut pcm, false).unwrap();
        assert_eq!(n, packet.duration as usize);
        for frame in pcm[..n * 2].chunks_exact(2) {
            left.push(f64::from(frame[0]) / 32768.0);
            right.push(f64::from(frame[1]) / 32768.0);
        }
    }
    (left, right)
}

fn rms(samples: &[f64]) -> f64 {
    (samples.iter().map(|s| s * s).sum::<f64>() / samples.len() as f64).sqrt()
}

fn db(ratio: f64) -> f64 {
    20.0 * ratio.log10()
}

/// Power at `freq` (Goertzel).
fn goertzel(samples: &[f64], freq: f64, rate: f64) -> f64 {
    let coeff = 2.0 * (TAU * freq / rate).cos();
    let (mut s1, mut s2) = (0.0, 0.0);
    for &x in samples {
        let s0 = x + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    s1 * s1 + s2 * s2 - coeff * s1 * s2
}

/// The strongest frequency between 100 Hz and 4 kHz, in 5 Hz steps.
fn dominant_frequency(samples: &[f64]) -> f64 {
    (20..=800)
        .map(|k| f64::from(k) * 5.0)
        .max_by(|&a, &b| goertzel(samples, a, 48_000.0).total_cmp(&goertzel(samples, b, 48_000.0)))
        .unwrap()
}

/// Rising zero crossings per second.
fn zero_crossing_frequency(samples: &[f64]) -> f64 {
    let rising = samples.windows(2).filter(|w| w[0] < 0.0 && w[1] >= 0.0).count();
    rising as f64 * 48_000.0 / samples.len() as f64
}

fn check_one_second_of_440_hz(source_rate: u32) {
    let mut encoder = AudioEncoder::new(AudioConfig::new(f64::from(source_rate))).unwrap();
    assert_eq!(encoder.is_resampling(), source_rate != 48_000);
    push_in_odd_chunks(&mut encoder, &sine(source_rate, 1.0, 440.0));
    let mut packets = drain(&mut encoder);
    // Before flushing, only the resampler's few milliseconds can be missing.
    if source_rate == 48_000 {
        assert_eq!(packets.len(), 50);
    } else {
        assert!((49..=50).contains(&packets.len()), "{} packets before flush", packets.len());
    }
    encoder.flush().unwrap();
    packets.extend(drain(&mut encoder));
    assert_eq!(packets.len(), 50, "1 s in, 50 packets of 20 ms out");
    for (i, packet) in packets.iter().enumerate() {
        assert_eq!(packet.duration, 960);
        assert_eq!(packet.timestamp, i as u64 * 960);
        assert!(!packet.data.is_empty() && packet.data.len() < 1275);
    }

    let (left, right) = decode(&packets);
    assert_eq!(left.len(), 48_000);
    // Skip the codec's start-up and the padded end.
    let (left, right) = (&left[4_800..43_200], &right[4_800..43_200]);
    for (name, channel, amplitude) in [("left", left, LEFT_AMPLITUDE), ("right", right, RIGHT_AMPLITUDE)] {
        let freq = dominant_frequency(channel);
        let zc = zero_crossing_frequency(channel);
        let level = db(rms(channel) / (amplitude / 2f64.sqrt()));
        println!("{source_rate} Hz {name}: peak {freq} Hz, zero crossings {zc:.1} Hz, level {level:+.2} dB");
        assert!((freq - 440.0).abs() <= 5.0, "{name}: dominant {freq} Hz");
        assert!((zc - 440.0).abs() <= 3.0, "{name}: zero crossings {zc} Hz");
        assert!(level.abs() <= 1.5, "{name}: level off by {level:.2} dB");
    }
}

#[test]
fn sine_at_32768_hz_is_resampled_and_encoded_as_50_packets_of_440_hz() {
    check_one_second_of_440_hz(32_768);
}

#[test]
fn sine_at_48000_hz_skips_resampling_and_encodes_as_50_packets_of_440_hz() {
    check_one_second_of_440_hz(48_000);
}

#[test]
fn ten_millisecond_frames_give_100_packets_a_second() {
    let config = AudioConfig { frame: OpusFrameDuration::Ms10, ..AudioConfig::new(32_768.0) };
    let mut encoder = AudioEncoder::new(config).unwrap();
    push_in_odd_chunks(&mut encoder, &sine(32_768, 1.0, 440.0));
    encoder.flush().unwrap();
    let packets = drain(&mut encoder);
    assert_eq!(packets.len(), 100);
    assert!(packets.iter().enumerate().all(|(i, p)| p.duration == 480 && p.timestamp == i as u64 * 480));
    let (left, _) = decode(&packets);
    let freq = dominant_frequency(&left[4_800..43_200]);
    assert!((freq - 440.0).abs() <= 5.0, "{freq}");
}

#[test]
fn non_integer_core_rates_are_resampled_too() {
    // snes9x reports 32040.5 Hz; any rate works.
    let mut encoder = AudioEncoder::new(AudioConfig::new(32_040.5)).unwrap();
    let samples = sine(32_040, 0.5, 1000.0);
    encoder.push(&samples).unwrap();
    encoder.flush().unwrap();
    let packets = drain(&mut encoder);
    assert_eq!(packets.len(), 25);
    let (left, _) = decode(&packets);
    let freq = dominant_frequency(&left[4_800..20_000]);
    assert!((freq - 1000.0).abs() <= 5.0, "{freq}");
}

#[test]
fn timestamps_line_up_with_the_input_after_resampling() {
    // Silence for 0.5 s, then a tone: the tone's onset must come out at 0.5 s plus Opus's own
    // 2.5 ms look-ahead, i.e. the resampler's delay has been taken out.
    let rate = 32_768u32;
    let mut samples = vec![0i16; rate as usize];
    samples.extend(sine(rate, 0.5, 440.0));
    let mut encoder = AudioEncoder::new(AudioConfig::new(f64::from(rate))).unwrap();
    push_in_odd_chunks(&mut encoder, &samples);
    encoder.flush().unwrap();
    let packets = drain(&mut encoder);
    assert_eq!(packets.len(), 50);
    let (left, _) = decode(&packets);
    let onset = left.iter().position(|s| s.abs() > 0.05).unwrap();
    let expected = 24_000 + 120;
    assert!(onset.abs_diff(expected) <= 48, "onset at {onset}, expected about {expected}");
}

#[test]
fn bad_input_is_rejected() {
    assert!(matches!(AudioEncoder::new(AudioConfig::new(0.0)), Err(AudioError::BadSourceRate(_))));
    assert!(matches!(AudioEncoder::new(AudioConfig::new(f64::NAN)), Err(AudioError::BadSourceRate(_))));
    let mut encoder = AudioEncoder::new(AudioConfig::new(32_768.0)).unwrap();
    let before = encoder.buffered_frames();
    assert!(matches!(encoder.push(&[1, 2, 3]), Err(AudioError::PartialFrame(3))));
    assert_eq!(encoder.buffered_frames(), before, "nothing taken from a rejected call");
    assert!(encoder.push(&[1, 2]).is_ok());
}

/// The stereo flag of an Opus packet's TOC byte (RFC 6716, 3.1).
fn is_stereo_packet(p: &OpusPacket) -> bool {
    p.data[0] & 0x04 != 0
}

#[test]
fn a_mono_source_is_coded_as_one_channel_until_its_channels_differ() {
    // NES cores write the same sample to both channels.
    let mut encoder = AudioEncoder::new(AudioConfig::new(48_000.0)).unwrap();
    let mono: Vec<i16> = sine(48_000, 2.0, 440.0).chunks_exact(2).flat_map(|f| [f[0], f[0]]).collect();
    push_in_odd_chunks(&mut encoder, &mono);
    assert!(encoder.is_coding_mono(), "2 s of identical channels");
    let stereo = sine(48_000, 1.0, 440.0);
    encoder.push(&stereo[..960 * 2]).unwrap();
    assert!(!encoder.is_coding_mono(), "the first frame whose channels differ brings stereo back");
    encoder.push(&stereo[960 * 2..]).unwrap();
    encoder.flush().unwrap();
    let packets = drain(&mut encoder);
    assert_eq!(packets.len(), 150);
    // Stereo until a second of mono has been seen, mono to the end of the mono part, then stereo.
    let flags: Vec<bool> = packets.iter().map(is_stereo_packet).collect();
    assert!(flags[..49].iter().all(|s| *s), "{flags:?}");
    assert!(flags[50..100].iter().all(|s| !*s), "{flags:?}");
    assert!(flags[100..].iter().all(|s| *s), "{flags:?}");
    let (left, right) = decode(&packets);
    let (mono_l, mono_r) = (&left[60_000..96_000], &right[60_000..96_000]);
    assert!((dominant_frequency(mono_l) - 440.0).abs() <= 5.0);
    assert!(db(rms(mono_l) / rms(mono_r)).abs() <= 0.5, "mono part: both channels at the same level");
    assert!(
        (db(rms(mono_l) / (LEFT_AMPLITUDE / 2f64.sqrt()))).abs() <= 1.5,
        "mono part keeps the level: {:.2} dB",
        db(rms(mono_l) / (LEFT_AMPLITUDE / 2f64.sqrt()))
    );
    let (st_l, st_r) = (&left[100_000..140_000], &right[100_000..140_000]);
    let balance = db(rms(st_l) / rms(st_r));
    assert!((balance - db(LEFT_AMPLITUDE / RIGHT_AMPLITUDE)).abs() <= 1.5, "stereo again: {balance:.2} dB");
}
