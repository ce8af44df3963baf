#!/usr/bin/env bash
# Workload: git_work — everyday version-control work of a developer: init a repo, a series of
# commits, feature branches, status/log/diff/blame/grep, stash, a merge and a rebase, tags, a
# local clone and pull, gc and fsck. HOME points at a fake home in the work dir so the user's own
# git config is neither read nor written.
set -euo pipefail
# shellcheck source=SCRIPTDIR/../lib.sh
source "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../lib.sh"
scenario_init git_work

do_setup() {
    rm -rf "${W:?}/home" "${W:?}/repo" "${W:?}/clone"
    mkdir -p "$W/home"
    cat >"$W/home/.gitconfig" <<'EOF'
[user]
	name = Dev Eloper
	email = dev@example.invalid
[init]
	defaultBranch = main
[core]
	pager = cat
[advice]
	detachedHead = false
EOF
}

do_run() {
    export HOME="$W/home" GIT_CONFIG_NOSYSTEM=1 GIT_PAGER=cat PAGER=cat
    local n i f
    n=$(rand_int 5 12)
    mkdir -p "$W/repo"
    cd "$W/repo"
    git init -q
    mkdir -p src docs
    printf '# demo\n\nA small demo project.\n' >README.md
    printf 'def main():\n    print("hello")\n' >src/app.py
    git add -A
    git commit -q -m "Initial commit"
    # a series of small commits, each touching one or two files
    for ((i = 1; i <= n; i++)); do
        f=src/mod_$((i % 4)).py
        printf 'def f_%d(x):\n    return x * %d\n\n' "$i" "$i" >>"$f"
        ((i % 3 == 0)) && printf -- '- note %d\n' "$i" >>docs/notes.md
        git add -A
        git status --short
        git commit -q -m "Add f_$i to $f"
    done
    git log --oneline | upto 5
    # feature branch with two commits
    git switch -q -c feature/parser
    printf 'def parse(s):\n    return s.split(",")\n' >src/parser.py
    git add src/parser.py && git commit -q -m "Add parser"
    printf 'def parse_int(s):\n    return [int(x) for x in parse(s)]\n' >>src/parser.py
    git commit -q -am "Parse ints"
    git diff main --stat
    # meanwhile on main: a fix, with a stash in between
    git switch -q main
    printf '\n## Usage\n\nRun app.py.\n' >>README.md
    git stash -q
    git stash list
    git stash pop -q
    git commit -q -am "Document usage"
    git merge -q --no-ff -m "Merge feature/parser" feature/parser
    git log --oneline --graph --decorate | upto 15
    git diff HEAD~2 HEAD --stat
    git blame -s src/app.py | upto 5
    git grep -n "def f_" | upto 5
    git tag -a v0.1.0 -m "Release 0.1.0"
    # a second branch rebased onto main
    git switch -q -c fix/typo HEAD~1
    sed -i 's/small/tiny/' README.md
    git commit -q -am "Fix wording"
    git rebase -q main || git rebase --abort
    git switch -q main
    git branch -a
    git shortlog -sn HEAD
    # local clone, commit there, pull back
    git clone -q "$W/repo" "$W/clone"
    (cd "$W/clone" && printf 'x = 1\n' >src/const.py && git add . && git commit -q -m "Add const" )
    git pull -q --no-rebase "$W/clone" main
    git describe --tags
    git count-objects -v
    git gc -q
    git fsck --no-progress
    git log --stat -n 3 >/dev/null
}

do_teardown() {
    default_teardown
}

scenario_main "$@"
