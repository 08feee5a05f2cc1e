#!/usr/bin/env bash
# Build the kvd-demo test guest from Debian packages (see guest/README.md).
#
#   guest/build.sh [OUTDIR]        OUTDIR defaults to build/guest in the repo
#
# Writes OUTDIR/vmlinuz, initrd.img, kvd-demo.qcow2 and kernel-release.
# Needs: apt (to fetch linux-image-*-amd64, shim-signed and
# grub-efi-amd64-signed, which are unpacked here, never installed),
# busybox-static, cpio, gzip, dosfstools, mtools, syslinux, syslinux-common,
# qemu-utils. Run as root on Debian 12 (as another user it works too, without
# /dev/console in the initrd). Re-running is a no-op while the guest/ sources,
# the downloaded packages and the busybox/syslinux packages are unchanged
# (OUTDIR/.stamp); the kernel and its resolved modules, and the EFI loaders,
# are cached in OUTDIR/.cache, so a changed /init takes 1-2 s.
#
# The disk boots three ways: SeaBIOS runs syslinux (the FAT boot sector); UEFI
# runs /EFI/BOOT/BOOTX64.EFI, Debian's shim signed by Microsoft's UEFI CA,
# which loads GRUB signed by Debian, which loads the kernel signed by Debian.
# So OVMF with Microsoft's keys enrolled boots it under Secure Boot too.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$here")
out=${1:-$repo/build/guest}
mkdir -p "$out"
out=$(cd "$out" && pwd)

BUSYBOX=/bin/busybox        # from busybox-static: no shared libraries needed
SYSLINUX_CMDLINE="console=ttyS0 quiet"

say() { echo "guest/build.sh: $*"; }
die() { echo "guest/build.sh: error: $*" >&2; exit 1; }

for tool in apt-cache apt-get dpkg-deb cpio gzip mkfs.vfat mcopy syslinux qemu-img; do
    command -v "$tool" >/dev/null || die "missing $tool (apt-get install busybox-static cpio dosfstools mtools syslinux syslinux-common qemu-utils)"
done
[ -x "$BUSYBOX" ] || die "missing $BUSYBOX (apt-get install busybox-static)"

# The kernel: the package the linux-image-amd64 metapackage currently depends
# on, e.g. "linux-image-6.1.0-56-amd64 (= 6.1.192-2)".
resolve_kernel() {
    apt-cache show --no-all-versions linux-image-amd64 2>/dev/null |
        sed -n 's/^Depends: .*\(linux-image-[0-9][^ ,]*-amd64\) (= \([^)]*\)).*/\1 \2/p' | head -n1
}
# The signed EFI loaders: the candidate version of each package.
EFI_PACKAGES=(shim-signed grub-efi-amd64-signed)
resolve_efi() {
    local p v
    for p in "${EFI_PACKAGES[@]}"; do
        v=$(apt-cache show --no-all-versions "$p" 2>/dev/null | sed -n 's/^Version: //p' | head -n1)
        [ -n "$v" ] || return 1
        echo "$p=$v"
    done
}
kernel=$(resolve_kernel || true)
efi=$(resolve_efi || true)
if [ -z "$kernel" ] || [ -z "$efi" ]; then
    say "apt-cache does not know linux-image-amd64 or ${EFI_PACKAGES[*]}; running apt-get update"
    apt-get update -qq
    kernel=$(resolve_kernel || true)
    efi=$(resolve_efi || true)
fi
[ -n "$kernel" ] || die "cannot resolve the linux-image-amd64 dependency with apt-cache"
[ -n "$efi" ] || die "apt-cache does not know ${EFI_PACKAGES[*]} (Debian main)"
read -r kpkg kver <<<"$kernel"
mapfile -t efipkgs <<<"$efi"

pkgver() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null || echo unknown; }
stamp=$(
    {
        echo "kernel $kpkg $kver"
        echo "efi ${efipkgs[*]}"
        echo "busybox $(pkgver busybox-static) syslinux $(pkgver syslinux) $(pkgver syslinux-common)"
        echo "cmdline $SYSLINUX_CMDLINE"
        find "$here" -type f ! -name '*.md' -print0 | LC_ALL=C sort -z | xargs -0 sha256sum |
            sed "s|$here/||"
    } | sha256sum | cut -d' ' -f1
)
outputs=(vmlinuz initrd.img kvd-demo.qcow2 kernel-release)
uptodate=1
for f in "${outputs[@]}"; do [ -s "$out/$f" ] || uptodate=0; done
if [ "$uptodate" = 1 ] && [ "$(cat "$out/.stamp" 2>/dev/null)" = "$stamp" ]; then
    say "up to date: $out ($kpkg $kver)"
    exit 0
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/kvd-guest.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
chmod 0755 "$tmp" # apt-get download runs as _apt and must reach $tmp/dl

# Modules we need; their dependencies are resolved below. The order matters
# where there is no dependency: disk/cdrom/fs drivers come before the
# controllers so disks are bound while the controllers scan; button+evdev are
# what acpid listens to.
wanted=(
    virtio virtio_ring virtio_pci_modern_dev virtio_pci_legacy_dev
    sd_mod cdrom sr_mod isofs
    virtio_blk virtio_scsi failover net_failover virtio_net virtio_rng
    virtio_pci
    scsi_mod libata libahci ahci
    button evdev
)

# The kernel stage: vmlinuz plus the resolved modules, kept per kernel package
# and module list in OUTDIR/.cache so that changing only /init rebuilds in ~1 s.
cache=$out/.cache
kstage=$cache/kernel-$(echo "$kpkg $kver ${wanted[*]}" | sha256sum | cut -c1-16)
if [ ! -f "$kstage/kernel-release" ]; then
    say "downloading $kpkg $kver"
    mkdir -p "$tmp/dl"
    # apt drops privileges to _apt for downloads; let it write there.
    if [ "$(id -u)" = 0 ] && id _apt >/dev/null 2>&1; then chown _apt "$tmp/dl"; fi
    (cd "$tmp/dl" && apt-get download -q=2 "$kpkg=$kver")
    deb=$(echo "$tmp"/dl/*.deb)
    say "unpacking $(basename "$deb")"
    dpkg-deb -x "$deb" "$tmp/pkg"
    rm -f "$deb"
    krel=$(ls "$tmp/pkg/lib/modules")
    if [ -z "$krel" ] || [ ! -f "$tmp/pkg/boot/vmlinuz-$krel" ]; then die "no kernel in $deb"; fi
    moddir=$tmp/pkg/lib/modules/$krel

    # The package ships no modules.dep (its postinst runs depmod), so make one
    # with busybox depmod, then walk it depth-first: dependencies before
    # dependants. Each entry lists all (transitive) dependencies of a module.
    say "resolving modules for $krel"
    "$BUSYBOX" depmod -b "$tmp/pkg" "$krel"
    declare -A modpath moddeps loaded
    while IFS= read -r line; do
        path=${line%%:*}
        name=${path##*/}
        name=${name%%.ko*}
        modpath[${name//-/_}]=$path
        moddeps[$path]=${line#*:}
    done <"$moddir/modules.dep"
    order=()
    visit() {
        local path=$1 dep
        [ -n "${loaded[$path]:-}" ] && return 0
        loaded[$path]=1
        for dep in ${moddeps[$path]}; do visit "$dep"; done
        order+=("$path")
    }
    for m in "${wanted[@]}"; do
        if [ -n "${modpath[$m]:-}" ]; then
            visit "${modpath[$m]}"
        elif grep -q "/${m//_/[-_]}\.ko" "$moddir/modules.builtin"; then
            : # built into this kernel
        else
            die "module $m is neither a module nor built into $krel"
        fi
    done

    ks=$tmp/kstage
    mkdir -p "$ks/lib/modules/$krel"
    cp "$tmp/pkg/boot/vmlinuz-$krel" "$ks/vmlinuz"
    : >"$ks/kvd-modules"
    for path in "${order[@]}"; do
        ko=${path%.ko*}.ko
        mkdir -p "$ks/lib/modules/$krel/$(dirname "$ko")"
        case $path in # newer Debian kernels compress modules; insmod gets plain .ko
        *.ko.xz) "$BUSYBOX" xzcat "$moddir/$path" >"$ks/lib/modules/$krel/$ko" ;;
        *.ko.gz) gzip -dc "$moddir/$path" >"$ks/lib/modules/$krel/$ko" ;;
        *.ko.zst) zstd -qdc "$moddir/$path" >"$ks/lib/modules/$krel/$ko" ;;
        *) cp "$moddir/$path" "$ks/lib/modules/$krel/$ko" ;;
        esac
        echo "$ko" >>"$ks/kvd-modules"
    done
    cp "$moddir"/modules.builtin* "$moddir"/modules.order "$ks/lib/modules/$krel/"
    echo "$krel" >"$ks/kernel-release"
    rm -rf "$tmp/pkg" "$cache"/kernel-*
    mkdir -p "$cache"
    mv "$ks" "$kstage"
fi
krel=$(cat "$kstage/kernel-release")

# The EFI stage: shim and GRUB, both signed, from their packages (unpacked, not
# installed: the host's boot loader is none of our business).
estage=$cache/efi-$(echo "${efipkgs[*]}" | sha256sum | cut -c1-16)
if [ ! -f "$estage/grubx64.efi" ]; then
    say "downloading ${efipkgs[*]}"
    mkdir -p "$tmp/efidl"
    if [ "$(id -u)" = 0 ] && id _apt >/dev/null 2>&1; then chown _apt "$tmp/efidl"; fi
    (cd "$tmp/efidl" && apt-get download -q=2 "${efipkgs[@]}")
    for deb in "$tmp"/efidl/*.deb; do dpkg-deb -x "$deb" "$tmp/efipkg"; done
    es=$tmp/estage
    mkdir -p "$es"
    cp "$tmp/efipkg/usr/lib/shim/shimx64.efi.signed" "$es/BOOTX64.EFI" ||
        die "no shimx64.efi.signed in shim-signed"
    cp "$tmp/efipkg/usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed" "$es/grubx64.efi" ||
        die "no grubx64.efi.signed in grub-efi-amd64-signed"
    rm -rf "$tmp/efidl" "$tmp/efipkg" "$cache"/efi-*
    mkdir -p "$cache"
    mv "$es" "$estage"
fi

say "building initramfs"
root=$tmp/initramfs
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,run,tmp,mnt,root,etc}
chmod 1777 "$root/tmp"
cp "$BUSYBOX" "$root/bin/busybox"
for applet in $("$BUSYBOX" --list-full); do
    [ -e "$root/$applet" ] || ln -s /bin/busybox "$root/$applet"
done
cp -r "$kstage/lib" "$root/"
cp "$kstage/kvd-modules" "$root/etc/kvd-modules"
"$BUSYBOX" depmod -b "$root" "$krel" # so `modprobe` works for a human
install -m 0755 "$here/init" "$root/init"
# The kernel opens /dev/console for /init before anything is mounted.
if [ "$(id -u)" = 0 ]; then mknod -m 0600 "$root/dev/console" c 5 1; fi
find "$root" -exec touch -h -d @0 {} + # reproducible archive
(cd "$root" && find . -print0 | LC_ALL=C sort -z |
    cpio --null --create --format=newc --owner=0:0 --reproducible --quiet) |
    gzip -n >"$tmp/initrd.img"
cp "$kstage/vmlinuz" "$kstage/kernel-release" "$tmp/"

say "building kvd-demo.qcow2"
cat >"$tmp/syslinux.cfg" <<EOF
# kvd-demo: boot straight into the kernel, no menu.
SERIAL 0 115200
DEFAULT kvd
PROMPT 0
TIMEOUT 0
LABEL kvd
  LINUX /vmlinuz
  INITRD /initrd.img
  APPEND $SYSLINUX_CMDLINE
EOF
# UEFI: shim (BOOTX64.EFI, the removable-media path OVMF boots) loads
# grubx64.efi from its own directory, and Debian's signed GRUB reads grub.cfg
# from there too ($cmdpath). Without fbx64.efi beside it, shim goes straight to
# GRUB instead of trying to create boot entries.
cat >"$tmp/grub.cfg" <<EOF
# kvd-demo: boot straight into the kernel, no menu.
set timeout=0
linux /vmlinuz $SYSLINUX_CMDLINE
initrd /initrd.img
boot
EOF
# FAT image sized to the payload plus 1-2 MiB for syslinux and the FAT itself.
payload=$(($(stat -c %s "$tmp/vmlinuz") + $(stat -c %s "$tmp/initrd.img")))
payload=$((payload + $(stat -c %s "$estage/BOOTX64.EFI") + $(stat -c %s "$estage/grubx64.efi")))
size_kib=$(((payload / 1048576 + 2) * 1024))
mkfs.vfat -C -n KVDDEMO -i 6b766430 "$tmp/disk.img" "$size_kib" >/dev/null
syslinux --install "$tmp/disk.img"
mcopy -i "$tmp/disk.img" "$tmp/syslinux.cfg" "$tmp/vmlinuz" "$tmp/initrd.img" ::/
mmd -i "$tmp/disk.img" ::/EFI ::/EFI/BOOT
mcopy -i "$tmp/disk.img" "$estage/BOOTX64.EFI" "$estage/grubx64.efi" "$tmp/grub.cfg" ::/EFI/BOOT/
qemu-img convert -f raw -O qcow2 "$tmp/disk.img" "$tmp/kvd-demo.qcow2"

for f in "${outputs[@]}"; do mv -f "$tmp/$f" "$out/$f"; done
echo "$stamp" >"$out/.stamp"
say "done: $out ($krel; $(wc -l <"$kstage/kvd-modules") modules)"
ls -l "${outputs[@]/#/$out/}"
