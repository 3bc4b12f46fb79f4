# fish completion for modelctl (`modelctl --show-completion fish`).
# modelctl answers with data: a line `files` or `values`, then one candidate a line (a tab
# before its description); fish quotes what it inserts.
function __modelctl_complete
    set -l answer (env _MODELCTL_COMPLETE=complete_fish _MODELCTL_COMPLETE_LINE=(commandline -cp | string collect) modelctl 2>/dev/null)
    if test "$answer[1]" = files
        __fish_complete_path (commandline -ct)
    else if set -q answer[2]
        printf '%s\n' $answer[2..-1]
    end
end

complete --command modelctl --no-files --arguments '(__modelctl_complete)'
