module github.com/parleygw/parley

go 1.26.8
