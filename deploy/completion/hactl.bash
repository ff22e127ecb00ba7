# bash completion for hactl, hakeep's command line (installed as
# /usr/share/bash-completion/completions/hactl).

_hactl() {
    # Plain COMP_WORDS: no need for the bash-completion package's helpers.
    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}
    local words=("${COMP_WORDS[@]}") cword=$COMP_CWORD

    local globals="--api --json --timeout --tls-cert --tls-key --tls-ca --help"
    case $prev in
        --api|--tls-cert|--tls-key|--tls-ca|-o|--dir)
            COMPREPLY=($(compgen -f -- "$cur"))
            return ;;
        --timeout|--pid|-i)
            return ;;
    esac

    # The command words typed so far, flags and their values left out.
    local i cmd=() skip=
    for ((i = 1; i < cword; i++)); do
        if [[ -n $skip ]]; then skip=; continue; fi
        case ${words[i]} in
            --api|--timeout|--tls-cert|--tls-key|--tls-ca|--pid|-i|-o|--dir) skip=1 ;;
            -*) ;;
            *) cmd+=("${words[i]}") ;;
        esac
    done

    local list
    case "${cmd[0]-}" in
        "") list="status vrrp ipvs checks config cluster genhash tls keygen reload version help" ;;
        config)
            case "${cmd[1]-}" in
                "") list="validate push show history rollback" ;;
                validate) list="-i" ;;
                push) list="--wait --dry-run" ;;
                rollback) list="--wait" ;;
            esac ;;
        cluster)
            case "${cmd[1]-}" in
                "") list="init join members remove" ;;
            esac ;;
        tls)
            case "${cmd[1]-}" in
                "") list="init ca cert help" ;;
                init) list="--dir --days" ;;
                ca|cert) list="create --client --dir --days" ;;
            esac ;;
        keygen) list="-o" ;;
        genhash) list="-s -p -u -S -V -h" ;;
        reload) list="--pid" ;;
        help) [[ ${#cmd[@]} -lt 2 ]] && list="status vrrp ipvs checks config cluster genhash tls keygen reload version" ;;
    esac
    if [[ $cur == -* ]]; then
        list="$list $globals"
    fi
    COMPREPLY=($(compgen -W "$list" -- "$cur"))
    # config validate|push FILE: files too.
    if [[ ${cmd[0]-} == config && ( ${cmd[1]-} == validate || ${cmd[1]-} == push ) && ${#cmd[@]} -lt 3 && $cur != -* ]]; then
        COMPREPLY+=($(compgen -f -- "$cur"))
    fi
}
complete -F _hactl hactl
