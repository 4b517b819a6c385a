/*
 * sonde - monitoring and error tracking for services written in C.
 *
 * One include gives the whole API; include/sonde/<component>.h split it by
 * component. See README.md and docs/ for the guide.
 */
#ifndef SONDE_H
#define SONDE_H

#include "sonde/common.h"
#include "sonde/metrics.h"
#include "sonde/health.h"
#include "sonde/errors.h"
#include "sonde/host.h"
#include "sonde/runtime.h"
#include "sonde/config.h"
#include "sonde/log.h"
#include "sonde/sql.h"
#include "sonde/trace.h"
#include "sonde/app.h"
#include "sonde/export.h"
#include "sonde/gen.h"

#endif
