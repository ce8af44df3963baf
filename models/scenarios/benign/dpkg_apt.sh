#!/usr/bin/env bash
# Workload: dpkg_apt — an administrator inspecting the package system (read-only): list installed
# packages, which files a package owns and which package owns a file, verify a package's files,
# query versions and policy, search and show the archive. Nothing is installed or removed in
# `run`. (Every apt-cache call re-parses the lists here, ~1 s each: the image disables apt's
# pkgcache, so the apt part is kept to a handful of calls.)
set -euo pipefail
# shellcheck source=SCRIPTDIR/../lib.sh
source "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../lib.sh"
scenario_init dpkg_apt

do_setup() {
    # apt-cache needs package lists; fetch them once if this machine has none.
    if ! ls /var/lib/apt/lists/*_Packages* >/dev/null 2>&1; then
        DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 update -qq >&2
    fi
    # a few installed packages picked at random, so runs differ a little
    dpkg-query -W -f '${db:Status-Abbrev} ${Package}\n' | awk '$1 == "ii" {print $2}' | shuf -n 3 >"$W/pkgs"
}

do_run() {
    local p
    cd "$W"
    dpkg -l | wc -l
    dpkg -l 'libc6*' | tail -n 3
    dpkg -L coreutils | upto 20
    dpkg -S /bin/ls /usr/bin/ssh-keygen 2>/dev/null || true
    dpkg -s bash | grep -E '^(Version|Status|Depends)'
    dpkg --verify coreutils || true
    dpkg-query -W -f '${Installed-Size}\t${Package}\n' | sort -n | tail -n 5
    dpkg --get-selections | wc -l
    apt-cache policy bash
    apt-cache show bash | upto 12
    apt-cache depends bash
    apt-cache rdepends --installed libc6 | upto 10
    apt-cache search --names-only '^python3-.*json' | upto 10
    apt-cache search 'web server' | upto 10
    apt list --installed 2>/dev/null | wc -l
    apt-config dump | grep -i '^Dir' | upto 5
    # the randomly picked packages: files, status, and one policy query for all of them
    while read -r p; do
        dpkg -L "$p" | wc -l
        dpkg -s "$p" | grep -E '^(Version|Installed-Size)' || true
    done <"$W/pkgs"
    # shellcheck disable=SC2046
    apt-cache policy $(cat "$W/pkgs") | grep -E '^[^ ]|Installed|Candidate'
    zcat /usr/share/doc/bash/changelog.Debian.gz 2>/dev/null | upto 5 || true
    ls /var/cache/apt/archives | wc -l
}

do_teardown() {
    default_teardown
}

scenario_main "$@"
