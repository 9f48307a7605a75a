// An abraxas worker serving the functions the interop tests call.
// Usage: node worker.js HOST:PORT[,HOST:PORT...] [PREFIX]
// Functions are registered as PREFIX + name (default "node."). It prints
// "ready" on each connection and runs until killed.
'use strict';
var fs = require('fs');
var Gearman = require('abraxas');

var servers = process.argv[2].split(',');
var prefix = process.argv[3] || 'node.';

var client = Gearman.Client.connect({servers: servers, maxJobs: 8});
client.on('connection-error', function (err) {
    console.error('connection-error: ' + err.message);
});
client.setClientId('node-worker');

// upper: the payload in upper case, returned as the handler's value.
client.registerWorker(prefix + 'upper', function (task) {
    return task.payload.toString().toUpperCase();
});

// stream: the payload is a count N. Sends N partial results with WORK_DATA
// ("chunk-0;" ...) through the task's socket, each followed by a
// WORK_STATUS of (i+1)/N as abraxas encodes it (percent*100 over 100), a
// WORK_WARNING, then completes with "done". Abraxas only streams writes
// itself in its own server's streaming mode, so a user talking to gearmand
// sends WORK_DATA this way.
client.registerWorker(prefix + 'stream', function (task) {
    var n = parseInt(task.payload.toString(), 10);
    for (var i = 0; i < n; i++) {
        task.socket.workData(task.jobid, 'chunk-' + i + ';');
        task.status((i + 1) / n);
    }
    task.warn('careful');
    task.end('done');
});

// reverse: the payload's bytes in reverse order (used with ~1 MiB).
client.registerWorker(prefix + 'reverse', function (task) {
    return Buffer.from(task.payload).reverse();
});

// fail: throws, which abraxas reports as WORK_EXCEPTION then WORK_FAIL.
client.registerWorker(prefix + 'fail', function (task) {
    throw new Error('boom: ' + task.payload.toString());
});

// hold: the payload is "PROGRESS PATH". Reports PROGRESS (a fraction,
// which abraxas sends as PROGRESS*100 over 100), then waits until the file
// PATH exists (at most 20 s) and completes with "released".
client.registerWorker(prefix + 'hold', function (task) {
    var payload = task.payload.toString();
    var space = payload.indexOf(' ');
    task.status(parseFloat(payload.slice(0, space)));
    var path = payload.slice(space + 1);
    var deadline = Date.now() + 20000;
    var poll = setInterval(function () {
        if (fs.existsSync(path) || Date.now() > deadline) {
            clearInterval(poll);
            task.end('released');
        }
    }, 20);
});

// timed: registered with CAN_DO_TIMEOUT 2 (abraxas documents its timeout
// in seconds; gearmand 1.1.20 reads milliseconds, with a floor of 1000).
// Takes 100 ms and answers how many times this handle was assigned.
var assigned = {};
client.registerWorker(prefix + 'timed', {timeout: 2}, function (task) {
    assigned[task.jobid] = (assigned[task.jobid] || 0) + 1;
    return new Promise(function (resolve) {
        setTimeout(function () { resolve('assigned ' + assigned[task.jobid]); }, 100);
    });
});

// A worker that loses its connection logs it: the tests check that no
// server drops an abraxas worker.
client.on('disconnect', function () { console.error('disconnected'); });
client.on('connect', function () { console.log('ready'); });
