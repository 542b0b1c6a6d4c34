// Thin C wrapper over cv::VideoCapture: GoCV v0.31 cannot pass open
// parameters, and CAP_PROP_OPEN_TIMEOUT_MSEC / CAP_PROP_READ_TIMEOUT_MSEC are
// open-only, so an unreachable camera would block for FFmpeg's 30 s default.
#ifndef DANSTREAM_CVCAP_H
#define DANSTREAM_CVCAP_H
#ifdef __cplusplus
extern "C" {
#endif
typedef void* DanCap;
// Open a URL or file with the FFmpeg backend; NULL when it cannot be opened.
DanCap dan_cap_open_url(const char* url, int open_ms, int read_ms);
// Open local camera index with any backend; NULL when it cannot be opened.
DanCap dan_cap_open_device(int index);
// Read the next frame into mat (a GoCV Mat, i.e. cv::Mat*); 0 at end or on failure.
int dan_cap_read(DanCap c, void* mat);
double dan_cap_get(DanCap c, int prop);
void dan_cap_close(DanCap c);
#ifdef __cplusplus
}
#endif
#endif
