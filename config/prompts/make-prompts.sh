#!/bin/sh
# Generates tongdai's Vietnamese prompts and hold music as 8 kHz 16-bit mono PCM WAV.
#
# Speech: espeak-ng's Southern Vietnamese voice (the centre serves the Southeast and the Mekong
# Delta). Music: a gentle four-chord pad synthesised by sox, royalty-free by construction.
# Needs: espeak-ng, sox (Debian: apt-get install --no-install-recommends espeak-ng sox).
# A real recording replaces a generated file of the same name (see README.md).
set -eu

cd "$(dirname "$0")"
VOICE=vi-vn-x-south
SPEED=140        # words per minute; espeak's 175 is hurried for a distressed caller
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

# say NAME "text": speak, resample to 8 kHz mono 16-bit, trim silence, normalise to -3 dBFS,
# and leave 150 ms of air at each end. -D: no dither, so the output is reproducible.
say() {
    espeak-ng -v "$VOICE" -s "$SPEED" -w "$TMP/$1.raw.wav" "$2"
    sox -D "$TMP/$1.raw.wav" -r 8000 -c 1 -b 16 "$1.wav" \
        silence 1 0.02 0.5% reverse silence 1 0.02 0.5% reverse \
        gain -n -3 pad 0.15 0.15
}

say welcome "Tổng đài quốc gia bảo vệ trẻ em một một một xin kính chào. Xin vui lòng giữ máy."
say urgent-menu "Nếu trẻ em đang gặp nguy hiểm, xin bấm phím 1."
say please-hold "Xin vui lòng giữ máy, tư vấn viên sẽ trả lời trong giây lát."
say transfer-national "Cuộc gọi đang được chuyển tới tổng đài quốc gia. Xin vui lòng giữ máy."
say all-busy "Tất cả tư vấn viên đều đang bận. Xin vui lòng giữ máy hoặc gọi lại sau."
say outside-hours \
    "Trung tâm khu vực hiện ngoài giờ trực. Cuộc gọi sẽ được chuyển tới tổng đài quốc gia."
n=1
while [ "$n" -le 30 ]; do
    say "position-$n" "Bạn đang ở vị trí số $n trong hàng chờ."
    n=$((n + 1))
done

# Estimated wait, rounded up by the caller of these prompts to the nearest file that exists:
# wait-1-minute, then wait-N-minutes for the steps a caller can tell apart.
say wait-1-minute "Thời gian chờ dự kiến khoảng một phút."
for n in 2 3 4 5 10 15 20 30; do
    say "wait-$n-minutes" "Thời gian chờ dự kiến khoảng $n phút."
done

# Confirmations an agent hears after dialling a feature code (*21 to *24).
say feature-paused "Bạn đã tạm ngưng nhận cuộc gọi."
say feature-resumed "Bạn đã sẵn sàng nhận cuộc gọi."
say feature-wrapup-ended "Đã kết thúc thời gian hoàn tất cuộc gọi."
say feature-logged-out "Bạn đã đăng xuất."

# Hold music: C - Am - F - G, 6 s each (24 s loop), three sine voices per chord with a slow
# swell, mixed to mono at a calm level. Each chord fades in and out so the loop point is seamless.
chord() { # chord NAME f1 f2 f3
    sox -D -n -r 8000 -c 3 -b 16 "$TMP/$1.wav" synth 6 sine "$2" sine "$3" sine "$4" \
        remix 1-3 tremolo 0.25 20 fade q 1.2 6 1.2 gain -n -12
}
chord c 261.63 329.63 392.00
chord am 220.00 261.63 329.63
chord f 174.61 220.00 261.63
chord g 196.00 246.94 293.66
sox -D "$TMP/c.wav" "$TMP/am.wav" "$TMP/f.wav" "$TMP/g.wav" -r 8000 -c 1 -b 16 hold-music.wav

ls -l ./*.wav
