# Shell helpers the benchmark scripts share: `source bench/lib.sh` from the repository root.

# need COMMAND PACKAGE: installs the Debian package when the command is missing.
need() { command -v "$1" >/dev/null || { apt-get update -qq && apt-get install -y -qq "$2" >/dev/null; }; }

# children_cpu VAR [DIR]: CPU seconds (user + system) used so far by this shell's finished
# children (wrk, say: its share of the machine is the difference across one run), into the
# variable named VAR. `times` must run in this shell, not in a $(…) subshell; DIR ($WORK by
# default) holds its output.
children_cpu() {
  local dir=${2:-$WORK}
  times > "$dir/times.txt"
  printf -v "$1" '%s' "$(awk 'NR == 2 {
      n = split($0, f, " "); s = 0
      for (i = 1; i <= n; i++) { split(f[i], p, "m"); sub(/s$/, "", p[2]); s += p[1] * 60 + p[2] }
      printf "%.3f", s }' "$dir/times.txt")"
}

# json_field JSON KEY: one top-level field of a JSON object.
json_field() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }
