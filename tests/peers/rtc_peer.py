"""A scripted WebRTC peer (aiortc, an implementation independent of ours) for the /call/webrtc tests.

Prints {"offer": sdp} on stdout, reads {"answer": sdp} from stdin, then plays the WAV file given
as its microphone and records what it receives, for the given number of seconds. At the end it
prints {"state": ..., "received_ms": ...} and writes the received audio (8 kHz mono
16-bit WAV) to the output path. Usage: rtc_peer.py MIC.wav OUT.wav SECONDS
"""
import asyncio
import json
import sys
import wave

from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.contrib.media import MediaPlayer
from aiortc.mediastreams import MediaStreamError


async def main():
    mic, out, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
    pc = RTCPeerConnection()
    player = MediaPlayer(mic)
    pc.addTrack(player.audio)
    received = bytearray()

    @pc.on("track")
    def on_track(track):
        async def pull():
            from av.audio.resampler import AudioResampler

            to8k = AudioResampler(format="s16", layout="mono", rate=8000)
            while True:
                try:
                    frame = await track.recv()
                except MediaStreamError:
                    return
                for f in to8k.resample(frame):
                    received.extend(bytes(f.planes[0])[: f.samples * 2])

        asyncio.ensure_future(pull())

    await pc.setLocalDescription(await pc.createOffer())
    print(json.dumps({"offer": pc.localDescription.sdp}), flush=True)
    line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    await pc.setRemoteDescription(RTCSessionDescription(json.loads(line)["answer"], "answer"))
    await asyncio.sleep(seconds)
    state = pc.connectionState
    await pc.close()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(bytes(received))
    print(json.dumps({"state": state, "received_ms": len(received) // 16}), flush=True)


asyncio.run(main())
