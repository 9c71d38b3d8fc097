# bash completion for ptpfs and ptpctl.
# Install: cp contrib/completion/ptpfs.bash /usr/share/bash-completion/completions/ptpfs
#          ln -s ptpfs /usr/share/bash-completion/completions/ptpctl
# (or, for one user: source it from ~/.bashrc)

_ptpfs_specs="usb ptpip: sim sim:"

_ptpfs() {
    local cur prev
    cur=${COMP_WORDS[COMP_CWORD]}
    prev=${COMP_WORDS[COMP_CWORD-1]}
    local opts="-h --help -V --version -D --device --simulate --profile -f --foreground
        -v --verbose -d --debug -s --single-thread --reconnect --no-reconnect -o
        --install-mount-helper"
    local mount_opts="ro rw allow_other allow_root uid= gid= umask= attr_timeout=
        entry_timeout= negative_timeout= cache_ttl= readahead_min= readahead_max=
        kernel_readahead= timeout= min_rate= reconnect noreconnect spool_dir= device= profile=
        logfile= max_idle_threads= max_threads= thumbnails= remote"
    case $prev in
        -D|--device) COMPREPLY=($(compgen -W "$_ptpfs_specs" -- "$cur")); return ;;
        --profile) COMPREPLY=($(compgen -W "generic canon-eos android-mtp whole-object" -- "$cur")); return ;;
        -o)
            local head=${cur%,*} last=${cur##*,}
            [ "$head" = "$cur" ] && head="" || head="$head,"
            COMPREPLY=($(compgen -W "$mount_opts" -P "$head" -- "$last"))
            compopt -o nospace 2>/dev/null
            return ;;
    esac
    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$opts" -- "$cur"))
    else
        COMPREPLY=($(compgen -d -- "$cur") $(compgen -W "$_ptpfs_specs" -- "$cur"))
    fi
}

_ptpctl() {
    local cur prev
    cur=${COMP_WORDS[COMP_CWORD]}
    prev=${COMP_WORDS[COMP_CWORD-1]}
    if [ "${COMP_WORDS[1]}" = serve ]; then
        case $prev in
            --profile) COMPREPLY=($(compgen -W "generic canon-eos android-mtp whole-object" -- "$cur")); return ;;
            --root|--usb-gadget) COMPREPLY=($(compgen -d -- "$cur")); return ;;
        esac
        COMPREPLY=($(compgen -W "-h --help --listen --usb-gadget --root --profile --name --allow-uploads
            --deny-uploads --bandwidth --latency -v --debug" -- "$cur"))
        return
    fi
    if [ "${COMP_WORDS[1]}" = firmware ]; then
        case $prev in
            --device) COMPREPLY=($(compgen -W "$_ptpfs_specs" -- "$cur")); return ;;
            --profile) COMPREPLY=($(compgen -W "generic canon-eos android-mtp whole-object" -- "$cur")); return ;;
            --timeout) return ;;
        esac
        if [[ $cur == -* ]]; then
            COMPREPLY=($(compgen -W "-h --help --device --profile --timeout -v --verbose" -- "$cur"))
        else
            COMPREPLY=($(compgen -f -- "$cur"))
        fi
        return
    fi
    case $prev in
        --device) COMPREPLY=($(compgen -W "$_ptpfs_specs" -- "$cur")); return ;;
        --profile) COMPREPLY=($(compgen -W "generic canon-eos android-mtp whole-object" -- "$cur")); return ;;
        -O|--output|-u|--upload) COMPREPLY=($(compgen -f -- "$cur")); return ;;
    esac
    local opts="-h --help -V --version -o --list-operations -p --list-properties
        -d --list-properties-description -i --info -L --list-files -g --get-file
        -O --output --force -u --upload --parent --delete --set-property --device
        --profile --timeout --list-devices --auto-detect --json -v --debug"
    if [ "$COMP_CWORD" = 1 ] && [[ $cur != -* ]]; then
        COMPREPLY=($(compgen -W "serve firmware" -- "$cur"))
    else
        COMPREPLY=($(compgen -W "$opts" -- "$cur"))
    fi
}

complete -F _ptpfs ptpfs
complete -F _ptpctl ptpctl
