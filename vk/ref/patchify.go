package ref

// Patchify is the im2col of the Conv3d tubelet embedding (spec §8.3):
//
//	out[((b·nt+t)·nh+r)·nw+c, ((ci·tt+dt)·ps+dy)·ps+dx] = video[b, ci, t·tt+dt, r·ps+dy, c·ps+dx]
//
// video is [B, C, F, H, W]; out is [B·nt·nh·nw, C·tt·ps·ps] with nt = F/tt, nh = H/ps, nw = W/ps.
func Patchify(out, video []float64, B, C, F, H, W, tt, ps int) {
	nt, nh, nw := F/tt, H/ps, W/ps
	cols := C * tt * ps * ps
	for b := 0; b < B; b++ {
		for t := 0; t < nt; t++ {
			for r := 0; r < nh; r++ {
				for c := 0; c < nw; c++ {
					tok := ((b*nt+t)*nh+r)*nw + c
					for ci := 0; ci < C; ci++ {
						for dt := 0; dt < tt; dt++ {
							for dy := 0; dy < ps; dy++ {
								for dx := 0; dx < ps; dx++ {
									col := ((ci*tt+dt)*ps+dy)*ps + dx
									out[tok*cols+col] = video[(((b*C+ci)*F+t*tt+dt)*H+r*ps+dy)*W+c*ps+dx]
								}
							}
						}
					}
				}
			}
		}
	}
}
