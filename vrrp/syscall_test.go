package vrrp

import "syscall"

var syscallTERM = syscall.SIGTERM
