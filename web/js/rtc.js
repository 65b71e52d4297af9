// The RTCPeerConnection to the worker. The worker makes the offer (video, audio, and the
// `input` and `control` data channels); the page answers and trickles its candidates through
// signaling.

/**
 * Keeps only `codec` (e.g. "vp8") and its retransmission (rtx) among the receiver's video codecs.
 * Returns the list, or null when the browser cannot receive that codec.
 */
export function preferredVideoCodecs(capabilities, codec) {
  const wanted = `video/${codec}`.toLowerCase();
  const all = capabilities?.codecs ?? [];
  const keep = all.filter((c) => c.mimeType.toLowerCase() === wanted);
  if (keep.length === 0) return null;
  return keep.concat(all.filter((c) => c.mimeType.toLowerCase() === 'video/rtx'));
}

/** Codec names (`H264`, `VP8`, `rtx`…) of the first `kind` m-section of an SDP, in order. */
export function sdpCodecs(sdp, kind) {
  const section = sdp.split(/\r?\n(?=m=)/).find((m) => m.startsWith(`m=${kind} `));
  if (!section) return [];
  return [...section.matchAll(/^a=rtpmap:\d+ ([^/\s]+)\//gm)].map((m) => m[1]);
}

/**
 * The ICE transport policy for a page URL's query (`location.search`): `relay` with `?relay=1`,
 * else `all`. A debugging aid: with `relay` the browser uses only candidates through the TURN
 * servers of `init`, so a stream that plays proves the TURN setup (docs/operations.md).
 */
export function iceTransportPolicy(search) {
  return new URLSearchParams(search ?? '').get('relay') === '1' ? 'relay' : 'all';
}

/** `RTCIceCandidateInit` as docs/protocol.md spells it (only the three fields it names). */
function candidateInit(c) {
  return { candidate: c.candidate, sdpMid: c.sdpMid, sdpMLineIndex: c.sdpMLineIndex };
}

export class GamePeer {
  /**
   * @param {object} o
   * @param {RTCIceServer[]} o.iceServers from `init`
   * @param {string|null} o.codec video codec to insist on (`?codec=vp8`), or null for the default
   * @param {(c: object|null) => void} o.onLocalCandidate trickle to the coordinator (null = done)
   * @param {(track: MediaStreamTrack) => void} o.onTrack
   * @param {(state: string) => void} o.onConnectionState
   * @param {(channel: RTCDataChannel) => void} o.onInputChannel the worker's `input` channel
   * @param {(channel: RTCDataChannel) => void} [o.onControlChannel] the worker's `control` channel
   * @param {'all'|'relay'} [o.policy] ICE transport policy; default: `relay` when the page's URL
   *   has `?relay=1` ({@link iceTransportPolicy}), else `all`
   */
  constructor({
    iceServers,
    codec,
    onLocalCandidate,
    onTrack,
    onConnectionState,
    onInputChannel,
    onControlChannel,
    policy = iceTransportPolicy(globalThis.location?.search),
  }) {
    this.codec = codec;
    this.pendingRemote = [];
    this.closed = false;
    if (policy === 'relay') console.info('rtc: relay only (?relay=1): media goes through the TURN server');
    this.pc = new RTCPeerConnection({ iceServers: iceServers ?? [], iceTransportPolicy: policy });
    this.pc.addEventListener('icecandidate', (e) => {
      if (!e.candidate) onLocalCandidate(null);
      else if (e.candidate.candidate) onLocalCandidate(candidateInit(e.candidate));
    });
    this.pc.addEventListener('track', (e) => onTrack(e.track));
    this.pc.addEventListener('connectionstatechange', () => onConnectionState(this.pc.connectionState));
    this.pc.addEventListener('datachannel', (e) => {
      if (e.channel.label === 'input') onInputChannel(e.channel);
      else if (e.channel.label === 'control' && onControlChannel) onControlChannel(e.channel);
      else console.warn(`rtc: ignoring unexpected data channel ${JSON.stringify(e.channel.label)}`);
    });
  }

  /** Applies the worker's offer and returns the SDP answer to send back. */
  async answer(offerSdp) {
    await this.pc.setRemoteDescription({ type: 'offer', sdp: offerSdp });
    if (this.codec) this.#preferCodec(this.codec);
    const answer = await this.pc.createAnswer();
    await this.pc.setLocalDescription(answer);
    for (const c of this.pendingRemote.splice(0)) await this.#addRemote(c);
    return this.pc.localDescription.sdp;
  }

  #preferCodec(codec) {
    const codecs = preferredVideoCodecs(RTCRtpReceiver.getCapabilities('video'), codec);
    if (!codecs) {
      console.warn(`rtc: this browser cannot receive ${codec}; keeping the default codecs`);
      return;
    }
    for (const t of this.pc.getTransceivers()) {
      if (t.receiver.track?.kind === 'video') t.setCodecPreferences(codecs);
    }
  }

  /** A worker candidate, or null for the end of its candidates. */
  async addRemoteCandidate(candidate) {
    if (!this.pc.remoteDescription) {
      this.pendingRemote.push(candidate);
      return;
    }
    await this.#addRemote(candidate);
  }

  async #addRemote(candidate) {
    if (this.closed) return;
    try {
      if (candidate) await this.pc.addIceCandidate(candidate);
      else await this.pc.addIceCandidate(); // end of candidates
    } catch (err) {
      console.warn('rtc: remote candidate refused', candidate, err);
    }
  }

  getStats() {
    return this.pc.getStats();
  }

  get connectionState() {
    return this.pc.connectionState;
  }

  close() {
    this.closed = true;
    this.pc.close();
  }
}
