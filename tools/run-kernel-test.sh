#!/usr/bin/env bash
# kho in a real kernel, across real kexecs: builds tests/kernel/ (kho's writers and
# readers in a module, C++ compiled by kbuild with the kernel's own flags), boots
# Debian's kernel in QEMU (software emulation: no KVM needed) with 16 MiB kept by
# memmap= from both kernels, and runs a chain of live updates in one boot: each kernel
# reads back the handover the previous one left (stage 2), writes a new one (stage 1)
# and kexecs into the same kernel. The rounds: ok (kexec -l), file (kexec -s), a seal
# left as a crash at each of its steps, one sealed byte stale. Exit 0 only when every
# stage 2 printed what its round must give: "ok" for a sealed handover, the error's
# name for a torn or stale one.
#
#   tools/run-kernel-test.sh [--work DIR] [--timeout SECONDS]
#
# Installs what it needs (tools/install-deps.sh with the kernel's packages; the
# kernel image is extracted from its package, not installed). Prints the serial log's
# lines that prove it and the time of each step.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
work=/tmp/kho-kernel-test
timeout=420
while (($#)); do
  case "$1" in
    --work) work=$2; shift 2 ;;
    --timeout) timeout=$2; shift 2 ;;
    *) echo "usage: $0 [--work DIR] [--timeout SECONDS]" >&2; exit 2 ;;
  esac
done
work=$(realpath -m "$work")  # kbuild wants M= absolute
rounds=ok,file,seal-began,seal-entries,seal-root,stale
# What stage 2 must print after each round's stage 1 (kho's error names).
expected=("ok" "ok" "torn handover" "torn handover" "torn handover" "checksum mismatch|torn handover")

t0=$SECONDS
lap() { printf '%-34s %4d s\n' "$1" $((SECONDS - t0)); t0=$SECONDS; }
"$top/tools/install-deps.sh" --kernel
headers=$(ls -d /usr/src/linux-headers-*-amd64 | sort -V | tail -1)
kver=${headers#/usr/src/linux-headers-}
rm -rf "$work" && mkdir -p "$work/module" "$work/root/bin"
vmlinuz=/boot/vmlinuz-$kver
if [ ! -r "$vmlinuz" ]; then  # the image from its package, without installing it
  (cd "$work" && apt-get download -q "linux-image-$kver" >/dev/null &&
     dpkg-deb --fsys-tarfile linux-image-"$kver"_*.deb | tar -x "./boot/vmlinuz-$kver")
  vmlinuz=$work/boot/vmlinuz-$kver
fi
lap "packages and kernel $kver"

cp "$top"/tests/kernel/{Kbuild,kho_kexec.h,kho_kexec_glue.c,kho_kexec_nofdt.c,kho_kexec_stages.cpp} "$work/module/"
make -s -C "/lib/modules/$kver/build" M="$work/module" KHO_INCLUDE="$top/include" CXX=g++ \
  KHO_FRAME_WARNINGS="${KHO_FRAME_WARNINGS:-}" modules 2>&1 |
  tee "$work/module/build.log" | grep -E "warning|error" || true
[ -f "$work/module/kho_kexec.ko" ] || { echo "the module did not build"; exit 1; }
for section in .init_array .ctors; do  # no static constructors: a module never runs them
  if readelf -S "$work/module/kho_kexec_stages.o" | grep -q " $section"; then echo "static constructors ($section)"; exit 1; fi
done
echo "deepest frames (-fstack-usage):"
sort -t$'\t' -k2 -n -r "$work/module/kho_kexec_stages.su" |
  awk -F'\t' 'NR <= 3 {split($1, a, ":"); n = split(a[1], p, "/"); printf "  %5d bytes  %s:%s\n", $2, p[n], a[2]}'
lap "module (kbuild, the kernel's flags)"

root=$work/root
cp /bin/busybox "$root/bin/busybox"
cp "$top/tests/kernel/init" "$root/init"
cp "$work/module/kho_kexec.ko" "$root/"
cp "$vmlinuz" "$root/vmlinuz"
mkdir -p "$root/sbin" "$root/lib64" "$root/lib/x86_64-linux-gnu" "$root/proc" "$root/sys" "$root/dev"
cp /sbin/kexec "$root/sbin/"
for lib in $(ldd /sbin/kexec | grep -o '/[^ ]*'); do cp -L "$lib" "$root$lib" 2>/dev/null || cp -L "$lib" "$root/lib64/"; done
(cd "$root" && find . | cpio -o -H newc --quiet > "$work/initrd.cpio")
lap "initramfs"

append="console=ttyS0 memmap=16M\$0x40000000 panic=-1 oops=panic kho_round=0 kho_rounds=$rounds"
set +e
timeout "$timeout" qemu-system-x86_64 -machine q35 -cpu max -smp 2 -m 2G -nographic -no-reboot \
  -kernel "$vmlinuz" -initrd "$work/initrd.cpio" -append "$append" > "$work/serial.log" 2>&1
qemu=$?
set -e
tr -d '\r' < "$work/serial.log" > "$work/serial.txt"
lap "QEMU: $(grep -c 'Starting new kernel' "$work/serial.txt") kexecs"

grep -E "kexec_core: Starting new kernel|Command line:|kho_kexec: |kho-kexec: (kexec|all)" "$work/serial.txt" |
  sed 's/^\[ *[0-9.]*\] //'
fail=0
mapfile -t stage2 < <(grep -o 'kho_kexec: {"stage": 2.*' "$work/serial.txt")
mapfile -t stage1 < <(grep -o 'kho_kexec: {"stage": 1.*' "$work/serial.txt")
IFS=, read -r -a kinds <<< "$rounds"
for i in "${!kinds[@]}"; do
  got=$(sed -n 's/.*"status": "\([^"]*\)".*/\1/p' <<< "${stage2[$i]:-}")
  s1=$(sed -n 's/.*"status": "\([^"]*\)".*/\1/p' <<< "${stage1[$i]:-}")
  verdict=ok
  if [ "$s1" != ok ] || ! grep -qxE "${expected[$i]}" <<< "$got"; then verdict=FAILED; fail=1; fi
  printf 'round %d (%s): stage 1 %s, stage 2 "%s" (want %s): %s\n' $((i + 1)) "${kinds[$i]}" "${s1:-missing}" \
    "${got:-missing}" "${expected[$i]}" "$verdict"
done
grep -q "kho-kexec: all rounds done" "$work/serial.txt" || { echo "the chain did not finish (qemu exit $qemu)"; fail=1; }
if grep -qE "BUG:|Oops|general protection|stack-protector|Kernel panic" "$work/serial.txt"; then
  grep -E "BUG:|Oops|general protection|stack-protector|Kernel panic" "$work/serial.txt" | head -5
  fail=1
fi
echo "serial log: $work/serial.txt"
if ((fail)); then echo "kernel test FAILED"; exit 1; fi
echo "kernel test passed: ${#kinds[@]} rounds across $(grep -c 'Starting new kernel' "$work/serial.txt") real kexecs"
