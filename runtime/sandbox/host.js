/*
 * The host side of pmrunner's script sandbox, evaluated in a fresh V8 context
 * before Postman's sandbox bundle.
 *
 * The bundle expects what its usual hosts (a Node worker or a browser worker)
 * give it: a `bridge` event emitter to talk to the outside, timers, and a few
 * browser globals. This file provides them on bare V8:
 *
 * - `bridge`: messages from the bundle are JSON-encoded into an outbox that
 *   Python drains; Python dispatches into the bundle through `__pmHost.send`.
 * - timers: setTimeout/setInterval/setImmediate as real macrotasks, built on
 *   Atomics.waitAsync (the engine has no timers of its own that run at 0 ms).
 * - Blob, File, atob, btoa: the bundle's Buffer module references them.
 * - console: formats arguments here, so logs reach Python as plain text.
 */
// Declared with `var` so that the bundle's clean-up of the global object,
// which deletes what it does not know, cannot remove it.
var __pmHost;

(function (global) {
    'use strict';

    // Messages that need Python to act (or that end an execution) wake the
    // waiting Python side; the rest only accumulate until then.
    var WAKING_PREFIXES = [
        'execution.result.', 'execution.request.', 'execution.cookies.',
        'execution.run_collection_request.', 'execution.vault.', 'execution.datasets.',
        'initialize', 'error', 'pong'
    ];

    var outbox = [];
    var waiter = null;
    var wakeNeeded = false;

    function isWaking(name) {
        for (var i = 0; i < WAKING_PREFIXES.length; i++) {
            if (name.indexOf(WAKING_PREFIXES[i]) === 0) { return true; }
        }
        return false;
    }

    function wake() {
        if (waiter && wakeNeeded) {
            var resolve = waiter;
            waiter = null;
            wakeNeeded = false;
            // One string for the whole batch: Python reads it in one step,
            // where reading an array crosses into V8 once per element.
            resolve('[' + outbox.splice(0).join(',') + ']');
        }
    }

    function errorToJSON(error) {
        var plain = { name: error.name, message: error.message, stack: error.stack, __error: true };
        Object.keys(error).forEach(function (key) { plain[key] = error[key]; });
        return plain;
    }

    function safeStringify(value) {
        var seen = new WeakSet();
        return JSON.stringify(value, function (key, val) {
            if (val instanceof Error) { return errorToJSON(val); }
            if (typeof val === 'bigint') { return val.toString(); }
            if (typeof val === 'object' && val !== null) {
                if (seen.has(val)) { return undefined; }
                seen.add(val);
            }
            return val;
        });
    }

    function post(name, args) {
        outbox.push(safeStringify([name].concat(args)));
        if (isWaking(name)) { wakeNeeded = true; }
        wake();
    }

    var bridge = {
        _events: {},
        emit: function (name) {
            var args = Array.prototype.slice.call(arguments, 1);
            (this._events[name] || []).slice().forEach(function (listener) {
                listener.apply(bridge, args);
            });
        },
        dispatch: function (name) {
            // Console lines are formatted by our console (debug mode), and
            // assertions and errors also come per execution id: the bundle's
            // run-wide copies would only be dropped later.
            if (name === 'execution.console' || name === 'execution.assertion' ||
                name === 'execution.error') { return; }
            post(name, Array.prototype.slice.call(arguments, 1));
        },
        on: function (name, listener) {
            if (typeof listener !== 'function') { return; }
            (this._events[name] = this._events[name] || []).push(listener);
        },
        once: function (name, listener) {
            var self = this;
            self.on(name, function fn() {
                self.off(name, fn);
                listener.apply(self, arguments);
            });
        },
        off: function (name, listener) {
            var listeners = this._events[name];
            if (!listeners) { return; }
            if (!listener) { delete this._events[name]; return; }
            var index = listeners.indexOf(listener);
            if (index >= 0) { listeners.splice(index, 1); }
            if (!listeners.length) { delete this._events[name]; }
        }
    };

    // Timers: a zero delay still goes through the task queue (as in Node).
    var nextTimerId = 1;
    var liveTimers = new Map();

    function schedule(callback, delay, args, repeat) {
        var id = nextTimerId++;
        var wait = Math.max(Number(delay) || 0, 0.001);
        var arm = function () {
            var cell = new Int32Array(new SharedArrayBuffer(4));
            var result = Atomics.waitAsync(cell, 0, 0, wait);
            var fire = function () {
                if (!liveTimers.has(id)) { return; }
                if (repeat) { arm(); } else { liveTimers.delete(id); }
                callback.apply(null, args);
            };
            if (result.async) { result.value.then(fire); } else { Promise.resolve().then(fire); }
        };
        liveTimers.set(id, true);
        arm();
        return id;
    }

    function cancel(id) { liveTimers.delete(id); }

    global.setTimeout = function (callback, delay) {
        return schedule(callback, delay, Array.prototype.slice.call(arguments, 2), false);
    };
    global.setInterval = function (callback, delay) {
        return schedule(callback, delay, Array.prototype.slice.call(arguments, 2), true);
    };
    global.setImmediate = function (callback) {
        return schedule(callback, 0, Array.prototype.slice.call(arguments, 1), false);
    };
    global.clearTimeout = cancel;
    global.clearInterval = cancel;
    global.clearImmediate = cancel;

    // Browser globals the bundle's Buffer module references.
    class Blob {
        constructor(parts, options) {
            this._parts = parts || [];
            this.type = (options && options.type) || '';
        }
    }
    class File extends Blob {
        constructor(parts, name, options) {
            super(parts, options);
            this.name = name;
            this.lastModified = (options && options.lastModified) || Date.now();
        }
    }
    global.Blob = Blob;
    global.File = File;

    var B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
    global.btoa = function (input) {
        var text = String(input), out = '';
        for (var i = 0; i < text.length; i += 3) {
            var a = text.charCodeAt(i), b = text.charCodeAt(i + 1), c = text.charCodeAt(i + 2);
            if (a > 255 || b > 255 || c > 255) {
                throw new Error('InvalidCharacterError: btoa input has characters outside Latin1');
            }
            var n = (a << 16) | ((b || 0) << 8) | (c || 0);
            out += B64[(n >> 18) & 63] + B64[(n >> 12) & 63] +
                (i + 1 < text.length ? B64[(n >> 6) & 63] : '=') +
                (i + 2 < text.length ? B64[n & 63] : '=');
        }
        return out;
    };
    global.atob = function (input) {
        var text = String(input).replace(/[\s=]/g, ''), out = '', buffer = 0, bits = 0;
        for (var i = 0; i < text.length; i++) {
            var value = B64.indexOf(text[i]);
            if (value < 0) { throw new Error('InvalidCharacterError: atob input is not base64'); }
            buffer = (buffer << 6) | value;
            bits += 6;
            if (bits >= 8) {
                bits -= 8;
                out += String.fromCharCode((buffer >> bits) & 255);
            }
        }
        return out;
    };

    // console: format like Node's console.log, closely enough for reports.
    function formatValue(value, depth) {
        if (typeof value === 'string') { return depth ? JSON.stringify(value) : value; }
        if (value === undefined) { return 'undefined'; }
        if (typeof value === 'function') { return '[Function' + (value.name ? ': ' + value.name : '') + ']'; }
        if (typeof value === 'bigint') { return value.toString() + 'n'; }
        if (value instanceof Error) { return value.stack || (value.name + ': ' + value.message); }
        if (typeof value === 'object' && value !== null) {
            try { return safeStringify(value); } catch (e) { return Object.prototype.toString.call(value); }
        }
        return String(value);
    }
    var consoleObject = {};
    ['log', 'info', 'warn', 'error', 'debug', 'trace'].forEach(function (level) {
        consoleObject[level] = function () {
            var text = Array.prototype.map.call(arguments, function (v) { return formatValue(v, 0); }).join(' ');
            post('__console', [level, text]);
        };
    });
    consoleObject.clear = function () {};
    global.console = consoleObject;

    // Python's handle on the host. `send` dispatches into the bundle and
    // returns a promise of the messages gathered until one needs Python.
    var dispatchIntoBundle = function (args) { bridge.emit.apply(bridge, args); };
    __pmHost = {
        send: function (dispatchesJson) {
            var dispatches = JSON.parse(dispatchesJson);
            var pending = new Promise(function (resolve) { waiter = resolve; });
            try {
                dispatches.forEach(dispatchIntoBundle);
            } catch (error) {
                post('__host_error', [errorToJSON(error)]);
                wakeNeeded = true;
            }
            wake();
            return pending;
        },
        wait: function () {
            var pending = new Promise(function (resolve) { waiter = resolve; });
            wake();
            return pending;
        }
    };
    global.bridge = bridge;
    global.__uvm_emit = function () {};
    global.__uvm_setTimeout = global.setTimeout;
}(this));
