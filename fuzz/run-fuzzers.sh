#!/usr/bin/env bash
# Builds the fuzz targets (clang, libFuzzer, ASan + UBSan; fuzz/CMakeLists.txt) and runs each for
# a fixed time on its committed seed corpus (fuzz/corpus/<target>). New inputs go to a scratch
# directory, never into the repository; a crash, a sanitizer report, a timeout or an
# out-of-memory stops the script with the fuzzer's report and its reproducer.
#
#   fuzz/run-fuzzers.sh                  # every target, $ARGENT_FUZZ_SECONDS (20) each
#   ARGENT_FUZZ_SECONDS=600 fuzz/run-fuzzers.sh request_structured wal_replay
#
# Reproduce a finding: build-fuzz/<target>_fuzz CRASH_FILE
set -euo pipefail
cd "$(dirname "$0")/.."

build_dir=${ARGENT_FUZZ_BUILD_DIR:-build-fuzz}
seconds=${ARGENT_FUZZ_SECONDS:-20}
targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
  targets=(filter_parser request request_structured index_loader wal_replay)
fi

generator=()
if command -v ninja >/dev/null; then
  generator=(-G Ninja)
fi
cmake -S fuzz -B "$build_dir" "${generator[@]}" -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ >/dev/null
cmake --build "$build_dir" -j "${ARGENT_JOBS:-2}" --target $(printf '%s_fuzz ' "${targets[@]}")

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
for target in "${targets[@]}"; do
  corpus=fuzz/corpus/${target%_structured}
  mkdir -p "$scratch/$target"
  echo "fuzz: $target for ${seconds}s on $corpus"
  "$build_dir/${target}_fuzz" "$scratch/$target" "$corpus" -max_total_time="$seconds" \
    -timeout=10 -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
    -artifact_prefix="$scratch/$target-" 2>"$scratch/$target.log" || {
    tail -n 60 "$scratch/$target.log" >&2
    echo "fuzz: $target FAILED; reproducer(s):" >&2
    for f in "$scratch/$target-"*; do
      [[ -e $f ]] && cp "$f" "$build_dir/" && echo "  $build_dir/$(basename "$f")" >&2
    done
    exit 1
  }
  grep -E "stat::number_of_executed_units|stat::peak_rss_mb" "$scratch/$target.log" | tr '\n' ' '
  echo
done
