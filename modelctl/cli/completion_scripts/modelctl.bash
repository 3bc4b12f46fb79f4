# bash completion for modelctl: `source` this file (`modelctl --show-completion bash`).
# modelctl answers with data: a line `files` or `values`, then the words that replace the one
# being completed, already quoted for bash. Nothing in the answer is expanded or run.
_modelctl_completion() {
    local -a answer
    mapfile -t answer < <(env _MODELCTL_COMPLETE=complete_bash \
        _MODELCTL_COMPLETE_LINE="${COMP_LINE:0:COMP_POINT}" \
        _MODELCTL_COMPLETE_WORD="${COMP_WORDS[COMP_CWORD]}" "$1" 2>/dev/null)
    COMPREPLY=("${answer[@]:1}")
    if [[ ${answer[0]-} == files ]]; then
        compopt -o default
    fi
    return 0
}

complete -F _modelctl_completion modelctl
