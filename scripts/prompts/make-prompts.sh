#!/usr/bin/env bash
# make-prompts.sh — speaks the prompt tables (en.txt, fr.txt beside this script) into
# OUTDIR/{en,fr}/NAME.wav: espeak-ng voice, then sox to 8 kHz mono 16-bit PCM, the format
# relais-media plays without resampling.
#
# usage: make-prompts.sh OUTDIR
# env:   PROMPT_SPEED (words per minute, default 150), PROMPT_JOBS (parallel voices, default nproc)
#
# A prompt is spoken again only when its WAV is older than its table or this script, so a
# re-run is a few stat() calls. Files are written under a temporary name and renamed, so an
# interrupted run (or two build directories running it at once) never leaves a truncated WAV
# that looks up to date.
set -euo pipefail

prog=$(basename "$0")
die() { echo "$prog: $*" >&2; exit 1; }

[[ $# -eq 1 ]] || die "usage: $prog OUTDIR"
outdir=$1
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
self="$here/$(basename "${BASH_SOURCE[0]}")"

for tool in espeak-ng sox; do
  command -v "$tool" >/dev/null 2>&1 ||
    die "$tool not found: install it (\`make deps\` installs espeak-ng and sox)"
done

# espeak-ng's default 175 wpm is hard to follow through a narrow-band phone codec.
speed=${PROMPT_SPEED:-150}
jobs=${PROMPT_JOBS:-$(nproc 2>/dev/null || echo 2)}

# speak LANG NAME TEXT OUT: one prompt into OUT, atomically.
speak() {
  local lang=$1 name=$2 text=$3 out=$4
  # Hidden and per-process, still ending in .wav so sox knows the format.
  local tmp="${out%/*}/.$name.$BASHPID.wav"
  local raw="${out%/*}/.$name.$BASHPID.raw.wav"
  trap 'rm -f "$tmp" "$raw"' RETURN
  if [[ $text == @silence* ]]; then
    local seconds=${text#@silence}
    seconds=${seconds// /}
    [[ $seconds =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "$lang.txt: $name: bad '@silence SECONDS'"
    # -D: without it sox dithers the 16-bit output, and "silence" would be faint noise.
    sox -q -D -n -r 8000 -c 1 -b 16 -e signed-integer "$tmp" trim 0 "$seconds"
  else
    local ssml=()
    [[ $text == *"<"* ]] && ssml=(-m)
    # Text through stdin, so a prompt starting with '-' is never taken for an option.
    printf '%s\n' "$text" | espeak-ng "${ssml[@]}" -v "$lang" -s "$speed" --stdin -w "$raw" ||
      die "espeak-ng failed on $lang/$name"
    # Trim espeak's leading and trailing silence (silence + reverse twice), then pad 50 ms on
    # each side: a prompt chained after a number must not start abruptly, nor leave a gap.
    # Normalise to -3 dBFS so every prompt has the same loudness.
    sox -q "$raw" -r 8000 -c 1 -b 16 -e signed-integer "$tmp" \
      silence 1 0.01 0.1% reverse silence 1 0.01 0.1% reverse \
      pad 0.05 0.05 gain -n -3 rate 8k ||
      die "sox failed on $lang/$name"
  fi
  mv -f "$tmp" "$out"
}

running=0
made=0
for lang in en fr; do
  table="$here/$lang.txt"
  [[ -r $table ]] || die "missing table $table"
  mkdir -p "$outdir/$lang"
  declare -A seen=()
  lineno=0
  while IFS= read -r line || [[ -n $line ]]; do
    lineno=$((lineno + 1))
    [[ $line =~ ^[[:space:]]*(#|$) ]] && continue
    [[ $line == *"|"* ]] || die "$table:$lineno: expected name|text"
    name=${line%%|*}
    text=${line#*|}
    # Names become file names and the argument of call:play: keep them to a safe alphabet.
    [[ $name =~ ^[A-Za-z0-9_]+$ ]] || die "$table:$lineno: bad prompt name '$name'"
    [[ -n $text ]] || die "$table:$lineno: empty text for '$name'"
    [[ -z ${seen[$name]:-} ]] || die "$table:$lineno: '$name' already defined on line ${seen[$name]}"
    seen[$name]=$lineno
    out="$outdir/$lang/$name.wav"
    if [[ -s $out && $out -nt $table && $out -nt $self ]]; then
      continue
    fi
    speak "$lang" "$name" "$text" "$out" &
    running=$((running + 1))
    made=$((made + 1))
    if ((running >= jobs)); then
      wait -n || die "a prompt failed (see above)"
      running=$((running - 1))
    fi
  done <"$table"
  unset seen
done
while ((running > 0)); do
  wait -n || die "a prompt failed (see above)"
  running=$((running - 1))
done
echo "$prog: $made prompt(s) spoken into $outdir"
