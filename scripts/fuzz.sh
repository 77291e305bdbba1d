#!/usr/bin/env bash
# Builds the libFuzzer harnesses (swiftc -sanitize=fuzzer,address) and runs each for a fixed number of inputs.
#   scripts/fuzz.sh [runs]    default 200000; CI runs a short one
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-200000}"
out=.build/fuzz
mkdir -p "$out/work-normalizer" "$out/work-target" "$out/work-yaml"
export PATH="/opt/swift/usr/bin:$PATH"

# SwiftPM embeds codes.csv as PackageResources.codes_csv; a plain swiftc build needs the same declaration.
{
  printf 'enum PackageResources {\n    static let codes_csv: [UInt8] = Array(#"""\n'
  cat Sources/DeliveryResults/codes.csv
  printf '"""#.utf8)\n}\n'
} > "$out/PackageResources.swift"

flags=(-O -parse-as-library -sanitize=fuzzer,address -swift-version 6)
# The JSON module first (DeliveryResults imports it), as a static library beside its interface.
swiftc "${flags[@]}" -module-name JSON -emit-module -emit-module-path "$out/JSON.swiftmodule" -emit-library -static \
  -o "$out/libJSON.a" Sources/JSON/*.swift
swiftc "${flags[@]}" -I "$out" Sources/DeliveryResults/*.swift "$out/PackageResources.swift" Fuzz/NormalizerFuzz.swift \
  "$out/libJSON.a" -o "$out/normalizer"
# The request-target validator reads escapes with Signing's PercentEncoding: that one file, as the Signing module.
swiftc "${flags[@]}" -package-name sensgate -module-name Signing -emit-module -emit-module-path "$out/Signing.swiftmodule" -emit-library \
  -static -o "$out/libSigning.a" Sources/Signing/PercentEncoding.swift
swiftc "${flags[@]}" -package-name sensgate -I "$out" Sources/GatewayServer/Passthrough/RequestTarget.swift \
  Sources/GatewayServer/Server/Substring+Trimming.swift Fuzz/RequestTargetFuzz.swift \
  "$out/libSigning.a" -o "$out/request-target"
swiftc "${flags[@]}" Sources/GatewayServer/Configuration/YAMLSubset.swift Fuzz/YAMLSubsetFuzz.swift -o "$out/yaml-subset"

# Each run starts from the committed seed corpus; new inputs go to a scratch copy.
cp -n Fuzz/corpus/normalizer/* "$out/work-normalizer/" 2>/dev/null || true
cp -n Fuzz/corpus/target/* "$out/work-target/" 2>/dev/null || true
cp -n Fuzz/corpus/yaml/* "$out/work-yaml/" 2>/dev/null || true
"$out/normalizer" -runs="$runs" -max_len=65536 -timeout=10 -print_final_stats=1 "$out/work-normalizer"
"$out/request-target" -runs="$runs" -max_len=8192 -timeout=10 -dict=Fuzz/target.dict -print_final_stats=1 "$out/work-target"
"$out/yaml-subset" -runs="$runs" -max_len=4096 -timeout=10 -print_final_stats=1 "$out/work-yaml"
echo "fuzz: $runs inputs each through the normalizers, the request-target validator and the YAML subset, no failures"
