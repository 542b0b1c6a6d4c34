#include <opencv2/videoio.hpp>
#include <vector>
#include "cvcap.h"

// OpenCV reports failures with exceptions; they must never cross into Go.

DanCap dan_cap_open_url(const char* url, int open_ms, int read_ms) {
    cv::VideoCapture* c = nullptr;
    try {
        std::vector<int> params = {cv::CAP_PROP_OPEN_TIMEOUT_MSEC, open_ms,
                                   cv::CAP_PROP_READ_TIMEOUT_MSEC, read_ms};
        c = new cv::VideoCapture(url, cv::CAP_FFMPEG, params);
        if (c->isOpened()) return c;
    } catch (...) {
    }
    delete c;
    return nullptr;
}

DanCap dan_cap_open_device(int index) {
    cv::VideoCapture* c = nullptr;
    try {
        c = new cv::VideoCapture(index, cv::CAP_ANY);
        if (c->isOpened()) return c;
    } catch (...) {
    }
    delete c;
    return nullptr;
}

int dan_cap_read(DanCap c, void* mat) {
    try {
        return static_cast<cv::VideoCapture*>(c)->read(*static_cast<cv::Mat*>(mat)) ? 1 : 0;
    } catch (...) {
        return 0;
    }
}

double dan_cap_get(DanCap c, int prop) {
    try {
        return static_cast<cv::VideoCapture*>(c)->get(prop);
    } catch (...) {
        return 0;
    }
}

void dan_cap_close(DanCap c) {
    try {
        delete static_cast<cv::VideoCapture*>(c);
    } catch (...) {
    }
}
