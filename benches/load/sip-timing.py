#!/usr/bin/env python3
"""INVITE→100 and INVITE→200 times from a loopback capture (tcpdump -i lo -w FILE), per Call-ID.

Usage: sip-timing.py CAPTURE.pcap UAC_PORT
Times run from the first transmission of each INVITE sent from UAC_PORT to the first 100 and the
first 2xx (CSeq INVITE) sent back to UAC_PORT, with the kernel's capture timestamps (microseconds),
since SIPp's own response times have a 1 ms resolution. Prints one line of key=value figures.
"""
import struct
import sys

path, uac_port = sys.argv[1], int(sys.argv[2])
data = open(path, "rb").read()
magic = struct.unpack("<I", data[:4])[0]
endian = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
nanos = struct.unpack(endian + "I", data[:4])[0] == 0xA1B23C4D
linktype = struct.unpack(endian + "I", data[20:24])[0]
link_len = {1: 14, 113: 16, 276: 20, 0: 4}.get(linktype, 14)
invite, trying, ok = {}, {}, {}
pos = 24
while pos + 16 <= len(data):
    sec, frac, incl, _ = struct.unpack(endian + "IIII", data[pos:pos + 16])
    pkt = data[pos + 16:pos + 16 + incl]
    pos += 16 + incl
    t = sec + frac / (1e9 if nanos else 1e6)
    ip = pkt[link_len:]
    if len(ip) < 28 or ip[0] >> 4 != 4 or ip[9] != 17:
        continue
    ihl = (ip[0] & 0x0F) * 4
    sport, dport = struct.unpack(">HH", ip[ihl:ihl + 4])
    sip = ip[ihl + 8:]
    head = sip.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    lines = head.split("\r\n")
    call_id = cseq = None
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        if name in ("call-id", "i"):
            call_id = value.strip()
        elif name == "cseq":
            cseq = value.strip().upper()
    if not call_id or not cseq or not cseq.endswith("INVITE"):
        continue
    if sport == uac_port and lines[0].startswith("INVITE "):
        invite.setdefault(call_id, t)
    elif dport == uac_port and lines[0].startswith("SIP/2.0 "):
        code = lines[0].split()[1]
        if code == "100":
            trying.setdefault(call_id, t)
        elif code.startswith("2"):
            ok.setdefault(call_id, t)


def stats(name, replies):
    d = sorted((replies[c] - invite[c]) * 1000 for c in replies if c in invite)
    if not d:
        return f"{name}_n=0"
    pick = lambda p: d[min(len(d) - 1, round(p / 100 * (len(d) - 1)))]
    return (f"{name}_n={len(d)} {name}_p50_ms={pick(50):.3f} {name}_p99_ms={pick(99):.3f} "
            f"{name}_max_ms={d[-1]:.3f}")


print(f"invites={len(invite)} {stats('inv100', trying)} {stats('inv200', ok)}")
