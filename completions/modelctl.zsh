#compdef modelctl

_modelctl_completion() {
  eval $(env _TYPER_COMPLETE_ARGS="${words[1,$CURRENT]}" _MODELCTL_COMPLETE=complete_zsh modelctl)
}

compdef _modelctl_completion modelctl
