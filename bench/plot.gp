# plot.gp: latency against concurrency for each system (run-bench.sh).
# Called as: gnuplot -e "datafile='D'; outfile='O.png'; systems='a b c'"
# D holds one block per operation and system (operation-major, in the
# order of `systems`): "concurrency p50_ms p99_ms" lines.
set terminal pngcairo size 1500,500 font ",10" noenhanced
set output outfile
nsys = words(systems)
set multiplot layout 1,3 title "keymesh bench: median (solid) and p99 (dashed) latency per C_Sign / C_DeriveKey"
set logscale xy
set xtics (1, 2, 8, 32)
set xrange [0.8:40]
set xlabel "concurrent sessions"
set ylabel "latency (ms)"
set key top left
set grid
ops = "sign-rsa2048 sign-rsa3072 ecdh-p256"
do for [o = 1:3] {
	set title word(ops, o)
	plot for [s = 1:nsys] datafile index ((o - 1) * nsys + s - 1) \
		using 1:2 with linespoints lw 2 lc s title word(systems, s), \
	     for [s = 1:nsys] datafile index ((o - 1) * nsys + s - 1) \
		using 1:3 with lines dt 2 lc s notitle
}
unset multiplot
