// gemm_cpu_product.glsl: one tile product of gemm_cpu.glsl, included once per pair of operands with these
// macros defined (and undefined again at the end):
//   P_NAME              the function to define: P_NAME(baseX, ldX, baseY, ldY, kBegin, kEnd)
//   P_FETCH_X, P_ELEM_X the reads of the left operand X (gemm_cpu.glsl's OPERAND); P_FETCH_Y, P_ELEM_Y
//   P_TRANS_X           X stored [k, m] (else [m, k]); P_TRANS_Y: Y stored [n, k] (else [k, n])
//   P_FE_X, P_FE_Y      elements per texel; P_VEC_X, P_VEC_Y: read as texels (else word by word)
// It adds op(X)[m0..m0+MT, kBegin..kEnd) · op(Y)[kBegin..kEnd, the tile's columns] to acc.
//
// Reads per step of KB values of k, and where the broadcast value of row m0 + i at k0 + kk comes from:
//   X [m, k]: KB/FE_X texels per lane, lane l reading row m0 + l along k; A[m0 + i, k0 + kk] is element
//             kk % FE_X of read kk / FE_X in lane i.
//   X [k, m]: KB·G texels of G = MT/FE_X groups of FE_X rows, one per (kk, g), spread over the lanes of
//             ceil(KB·G / L) reads; A[m0 + i, k0 + kk] is element i % FE_X of texel (kk, i / FE_X).
//   Y [n, k]: KB/FE_Y texels per column vector, each lane reading its column's row along k.
//   Y [k, n]: per k, NB/CB reads of the lanes' runs of CB adjacent columns (colOf with CB = FE_Y), or
//             one word per column vector when the runs do not fall on texels (P_VEC_Y false).

void P_NAME(uint baseX, uint ldX, uint baseY, uint ldY, uint kBegin, uint kEnd) {
    const uint m = p.m, n = p.n;
    const uint kFull = kBegin + (kEnd - kBegin) / KB * KB;
    const uint G = (MT + P_FE_X - 1) / P_FE_X;                      // X [k, m]: groups of FE_X rows
    const uint FX = P_TRANS_X ? (KB * G + L - 1) / L : KB / P_FE_X; // X reads per step
    // This lane's row of X [m, k]; for X [k, m], the k (kkX) and first row (rowsX) of each read's texel
    // (as texels, a group past the last row reads the last group instead; word by word, each row is
    // clamped where it is read).
    const uint rowX = min(m0 + min(lane, MT - 1), m - 1);
    const uint lastGroup = (m - 1) / P_FE_X * P_FE_X;
    uint kkX[FX], rowsX[FX];
    [[unroll]] for (uint f = 0; f < FX; f++) {
        const uint idx = min(f * L + lane, KB * G - 1);
        kkX[f] = idx / G;
        rowsX[f] = m0 + P_FE_X * (idx % G);
        if (P_VEC_X) rowsX[f] = min(rowsX[f], lastGroup);
    }
    // This lane's columns (clamped: columns past n read column n − 1's data and are not stored).
    uint colY[NB];
    [[unroll]] for (uint j = 0; j < NB; j++) colY[j] = min(colOf(j, lane), n - 1);
    const uint lastRun = (n - 1) / CB * CB;

    for (uint k0 = kBegin; k0 < kFull; k0 += KB) {
        float xv[FX][8];
        [[unroll]] for (uint f = 0; f < FX; f++) {
            if (!P_TRANS_X) {
                P_FETCH_X(baseX + rowX * ldX + k0 + f * P_FE_X, xv[f]);
            } else if (P_VEC_X) {
                P_FETCH_X(baseX + (k0 + kkX[f]) * ldX + rowsX[f], xv[f]);
            } else {
                const uint e = baseX + (k0 + kkX[f]) * ldX;
                [[unroll]] for (uint c = 0; c < P_FE_X; c++) xv[f][c] = P_ELEM_X(e + min(rowsX[f] + c, m - 1));
                [[unroll]] for (uint c = P_FE_X; c < 8; c++) xv[f][c] = 0.0;
            }
        }
        if (P_TRANS_Y) {
            [[unroll]] for (uint s = 0; s < KB / P_FE_Y; s++) {
                float yv[NB][8];
                [[unroll]] for (uint j = 0; j < NB; j++) P_FETCH_Y(baseY + colY[j] * ldY + k0 + s * P_FE_Y, yv[j]);
                [[unroll]] for (uint c = 0; c < P_FE_Y; c++) {
                    const uint kk = s * P_FE_Y + c;
                    [[unroll]] for (uint i = 0; i < MT; i++) {
                        const uint idx = kk * G + i / P_FE_X;
                        const float a = P_TRANS_X ? subgroupShuffle(xv[idx / L][i % P_FE_X], idx % L)
                                                  : subgroupShuffle(xv[kk / P_FE_X][kk % P_FE_X], i);
                        [[unroll]] for (uint j = 0; j < NB; j++) acc[i * NB + j] += a * yv[j][c];
                    }
                }
            }
        } else {
            [[unroll]] for (uint kk = 0; kk < KB; kk++) {
                const uint row = baseY + (k0 + kk) * ldY;
                float yv[NB];
                if (P_VEC_Y) {
                    [[unroll]] for (uint q = 0; q < NB / CB; q++) {
                        const uint run = min(n0 + CB * (L * q + lane), lastRun);
                        [[unroll]] for (uint h = 0; h < CB / P_FE_Y; h++) {
                            float t[8];
                            P_FETCH_Y(row + run + h * P_FE_Y, t);
                            [[unroll]] for (uint c = 0; c < P_FE_Y; c++) yv[q * CB + h * P_FE_Y + c] = t[c];
                        }
                    }
                } else {
                    [[unroll]] for (uint j = 0; j < NB; j++) yv[j] = P_ELEM_Y(row + colY[j]);
                }
                [[unroll]] for (uint i = 0; i < MT; i++) {
                    const uint idx = kk * G + i / P_FE_X;
                    const float a = P_TRANS_X ? subgroupShuffle(xv[idx / L][i % P_FE_X], idx % L)
                                              : subgroupShuffle(xv[kk / P_FE_X][kk % P_FE_X], i);
                    [[unroll]] for (uint j = 0; j < NB; j++) acc[i * NB + j] += a * yv[j];
                }
            }
        }
    }
    // The last (kEnd − kBegin) % KB values of k, one at a time.
    for (uint k = kFull; k < kEnd; k++) {
        const float x = P_ELEM_X(P_TRANS_X ? baseX + k * ldX + rowX : baseX + rowX * ldX + k);
        float yv[NB];
        [[unroll]] for (uint j = 0; j < NB; j++) yv[j] = P_ELEM_Y(P_TRANS_Y ? baseY + colY[j] * ldY + k : baseY + k * ldY + colY[j]);
        [[unroll]] for (uint i = 0; i < MT; i++) {
            const float a = subgroupShuffle(x, i);
            [[unroll]] for (uint j = 0; j < NB; j++) acc[i * NB + j] += a * yv[j];
        }
    }
}

#undef P_NAME
#undef P_FETCH_X
#undef P_ELEM_X
#undef P_FETCH_Y
#undef P_ELEM_Y
#undef P_TRANS_X
#undef P_TRANS_Y
#undef P_FE_X
#undef P_FE_Y
#undef P_VEC_X
#undef P_VEC_Y
