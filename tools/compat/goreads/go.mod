module dbops.local/tools/compat/goreads

go 1.24
