module echobench

go 1.26.0
