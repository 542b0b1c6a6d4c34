module github.com/danstream/danstream

go 1.24
