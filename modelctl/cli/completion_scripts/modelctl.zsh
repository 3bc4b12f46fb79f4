#compdef modelctl
# zsh completion for modelctl: put it on $fpath as _modelctl, or `source` it after compinit
# (`modelctl --show-completion zsh`). modelctl answers with data: a line `files` or `values`,
# then one candidate a line (a tab before its description). compadd quotes what it inserts;
# nothing in the answer is evaluated.

_modelctl() {
  local -a answer shown
  local line value
  answer=("${(@f)$(env _MODELCTL_COMPLETE=complete_zsh _MODELCTL_COMPLETE_LINE="${(j: :)words[1,CURRENT]}" modelctl 2>/dev/null)}")
  if [[ $answer[1] == files ]]; then
    _files
    return
  fi
  for line in "${(@)answer[2,-1]}"; do
    value=${line%%$'\t'*}
    [[ -n $value ]] || continue
    # _describe reads a backslash as an escape and a colon as the start of the description.
    value=${${value//\\/\\\\}//:/\\:}
    if [[ $line == *$'\t'* ]]; then
      shown+=("$value:${line#*$'\t'}")
    else
      shown+=("$value")
    fi
  done
  (( $#shown )) && _describe -t values value shown
}

if [[ $funcstack[1] == _modelctl ]]; then
  _modelctl "$@"
else
  compdef _modelctl modelctl
fi
