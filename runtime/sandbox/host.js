/*
 * The host side of pmrunner's script sandbox, evaluated in a fresh V8 context
 * before Postman's sandbox bundle.
 *
 * The bundle expects what its usual hosts (a Node worker or a browser worker)
 * give it: a `bridge` event emitter to talk to the outside, timers, and a few
 * browser globals. This file provides them on bare V8:
 *
 * - `bridge`: messages from the bundle are JSON-encoded into an outbox that
 *   Python reads (`__pmHost.turn`); Python dispatches into the bundle
 *   through `__pmHost.send`.
 * - timers: setTimeout/setInterval/setImmediate are kept in a queue that
 *   Python has run (`__pmHost.turn`), so that every piece of JavaScript
 *   runs inside an evaluation that has a time limit. Nothing in the context
 *   runs by itself between two evaluations.
 * - Blob, File, atob, btoa: the bundle's Buffer module references them.
 * - console: formats arguments here, so logs reach Python as plain text, and
 *   caps what one script may print.
 *
 * Scripts share this context with the host (one context per run), so the host
 * uses only built-ins captured before any script ran: a script that replaces
 * `Array.prototype.join` changes nothing here. After boot, `__pmHost.protect`
 * makes the built-ins themselves refuse to be replaced (see `protect`).
 */
// Declared with `var` so that the bundle's clean-up of the global object,
// which deletes what it does not know, cannot remove it.
var __pmHost;

(function (global) {
    'use strict';

    // -- built-ins, captured before any script runs ----------------------
    // uncurry(f)(self, a, b) calls f with `this` = self, without looking up
    // `call` or `apply` again.
    var uncurry = Function.prototype.bind.bind(Function.prototype.call);
    var applyFunction = Reflect.apply;
    var arrayJoin = uncurry(Array.prototype.join);
    var arraySlice = uncurry(Array.prototype.slice);
    var arraySplice = uncurry(Array.prototype.splice);
    var arrayIndexOf = uncurry(Array.prototype.indexOf);
    var arrayMap = uncurry(Array.prototype.map);
    var arraySort = uncurry(Array.prototype.sort);
    var stringIndexOf = uncurry(String.prototype.indexOf);
    var stringSlice = uncurry(String.prototype.slice);
    var stringCharCodeAt = uncurry(String.prototype.charCodeAt);
    var stringReplace = uncurry(String.prototype.replace);
    var stringFromCharCode = String.fromCharCode;
    var toStringTag = uncurry(Object.prototype.toString);
    var jsonStringify = JSON.stringify;
    var jsonParse = JSON.parse;
    var objectKeys = Object.keys;
    var objectCreate = Object.create;
    var defineProperty = Object.defineProperty;
    var getOwnPropertyDescriptor = Object.getOwnPropertyDescriptor;
    var ownKeys = Reflect.ownKeys;
    var isPrototypeOf = uncurry(Object.prototype.isPrototypeOf);
    var dateNow = Date.now;
    var mathRandom = Math.random;
    var NumberOf = Number;
    var StringOf = String;
    var TypeErrorOf = TypeError;
    var ErrorPrototype = Error.prototype;
    var WeakSetOf = WeakSet;
    var weakSetHas = uncurry(WeakSet.prototype.has);
    var weakSetAdd = uncurry(WeakSet.prototype.add);

    function isError(value) {
        return typeof value === 'object' && value !== null && isPrototypeOf(ErrorPrototype, value);
    }

    // -- the outbox ------------------------------------------------------
    var outbox = [];
    // Whether the outbox holds a message Python must act on (a result, a
    // request to send, a cookie-jar call) before any timer runs.
    var wakeNeeded = false;
    // Whether a turn handed Python such a message: until Python answers (the
    // next `send` or `begin`), later turns run no timer. Python asks for
    // several turns at once and reads them in order, so the turns after a
    // waking one must leave the script where it was.
    var held = false;
    var WAKING_PREFIXES = [
        'execution.result.', 'execution.request.', 'execution.cookies.',
        'execution.run_collection_request.', 'execution.vault.', 'execution.datasets.',
        'initialize', 'error', '__host_error'
    ];

    function isWaking(name) {
        for (var i = 0; i < WAKING_PREFIXES.length; i++) {
            if (stringIndexOf(name, WAKING_PREFIXES[i]) === 0) { return true; }
        }
        return false;
    }
    var consoleLimit = 0;  // characters one script may print; 0: no limit
    var consoleUsed = 0;
    var consoleCapped = false;

    function errorToJSON(error) {
        var plain = { name: error.name, message: error.message, stack: error.stack, __error: true };
        var keys = objectKeys(error);
        for (var i = 0; i < keys.length; i++) { plain[keys[i]] = error[keys[i]]; }
        return plain;
    }

    function safeStringify(value) {
        var seen = new WeakSetOf();
        return jsonStringify(value, function (key, val) {
            if (isError(val)) { return errorToJSON(val); }
            if (typeof val === 'bigint') { return val.toString(); }
            if (typeof val === 'object' && val !== null) {
                if (weakSetHas(seen, val)) { return undefined; }
                weakSetAdd(seen, val);
            }
            return val;
        });
    }

    function post(name, args) {
        var message = [name];
        for (var i = 0; i < args.length; i++) { message[i + 1] = args[i]; }
        outbox[outbox.length] = safeStringify(message);
        if (isWaking(name)) { wakeNeeded = true; }
    }

    var RESULT_PREFIX = 'execution.result.';
    var SCOPES = ['environment', 'globals', 'collectionVariables', '_variables'];

    function plainOf(value) {
        return value && typeof value.toJSON === 'function' ? value.toJSON() : value;
    }

    // What Python reads of a finished execution (engine.py, `_apply_result`):
    // the variable scopes, the request a pre-request script may have changed,
    // and `return`. The execution's own toJSON also serialises the request
    // after every test script, its cookies, data, cursor and legacy fields:
    // nearly a tenth of a one-line test script's time.
    function resultOf(execution) {
        if (!execution || typeof execution !== 'object') { return execution; }
        var plain = { target: execution.target };
        for (var i = 0; i < SCOPES.length; i++) {
            if (execution[SCOPES[i]]) { plain[SCOPES[i]] = plainOf(execution[SCOPES[i]]); }
        }
        if (execution.target === 'prerequest' && execution.request) { plain.request = plainOf(execution.request); }
        plain['return'] = execution['return'];
        return plain;
    }

    var bridge = {
        _events: objectCreate(null),
        emit: function (name) {
            var args = arraySlice(arguments, 1);
            var listeners = this._events[name];
            if (!listeners) { return; }
            listeners = arraySlice(listeners);
            for (var i = 0; i < listeners.length; i++) { applyFunction(listeners[i], bridge, args); }
        },
        dispatch: function (name) {
            // Console lines are formatted by our console (debug mode), and
            // assertions and errors also come per execution id: the bundle's
            // run-wide copies would only be dropped later.
            if (name === 'execution.console' || name === 'execution.assertion' ||
                name === 'execution.error') { return; }
            var args = arraySlice(arguments, 1);
            if (args.length > 1 && stringIndexOf(name, RESULT_PREFIX) === 0) { args[1] = resultOf(args[1]); }
            post(name, args);
        },
        on: function (name, listener) {
            if (typeof listener !== 'function') { return; }
            var listeners = this._events[name] || (this._events[name] = []);
            listeners[listeners.length] = listener;
        },
        once: function (name, listener) {
            var self = this;
            self.on(name, function fn() {
                self.off(name, fn);
                applyFunction(listener, self, arguments);
            });
        },
        off: function (name, listener) {
            var listeners = this._events[name];
            if (!listeners) { return; }
            if (!listener) { delete this._events[name]; return; }
            var index = arrayIndexOf(listeners, listener);
            if (index >= 0) { arraySplice(listeners, index, 1); }
            if (!listeners.length) { delete this._events[name]; }
        }
    };

    // -- timers, run by Python -------------------------------------------
    // A timer is due at `due` (ms since the epoch); ties run in the order
    // they were set. A zero delay still waits for the next turn (as in Node).
    var nextTimerId = 1;
    var timers = [];

    function schedule(callback, delay, args, repeat) {
        var id = nextTimerId++;
        var wait = NumberOf(delay) || 0;
        if (wait < 0) { wait = 0; }
        timers[timers.length] = { id: id, due: dateNow() + wait, wait: wait, callback: callback, args: args, repeat: repeat };
        return id;
    }

    function cancel(id) {
        for (var i = 0; i < timers.length; i++) {
            if (timers[i].id === id) { arraySplice(timers, i, 1); return; }
        }
    }

    function byDue(a, b) { return a.due - b.due || a.id - b.id; }

    // Runs the timers that are due now, not those they set in turn.
    function runDueTimers() {
        var now = dateNow();
        var due = [];
        for (var i = 0; i < timers.length; i++) {
            if (timers[i].due <= now) { due[due.length] = timers[i]; }
        }
        arraySort(due, byDue);
        for (var j = 0; j < due.length; j++) {
            var timer = due[j];
            var index = arrayIndexOf(timers, timer);
            if (index < 0) { continue; }  // cleared by an earlier callback
            if (timer.repeat) { timer.due = now + (timer.wait || 1); } else { arraySplice(timers, index, 1); }
            if (typeof timer.callback === 'function') { applyFunction(timer.callback, null, timer.args); }
        }
    }

    function nextTimerDelay() {
        if (!timers.length) { return -1; }
        var first = timers[0].due;
        for (var i = 1; i < timers.length; i++) { if (timers[i].due < first) { first = timers[i].due; } }
        var delay = first - dateNow();
        return delay > 0 ? delay : 0;
    }

    global.setTimeout = function (callback, delay) {
        return schedule(callback, delay, arraySlice(arguments, 2), false);
    };
    global.setInterval = function (callback, delay) {
        return schedule(callback, delay, arraySlice(arguments, 2), true);
    };
    global.setImmediate = function (callback) {
        return schedule(callback, 0, arraySlice(arguments, 1), false);
    };
    global.clearTimeout = cancel;
    global.clearInterval = cancel;
    global.clearImmediate = cancel;

    // -- browser globals the bundle's Buffer module references -----------
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
            this.lastModified = (options && options.lastModified) || dateNow();
        }
    }
    global.Blob = Blob;
    global.File = File;

    var B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
    global.btoa = function (input) {
        var text = StringOf(input), out = '';
        for (var i = 0; i < text.length; i += 3) {
            var a = stringCharCodeAt(text, i), b = stringCharCodeAt(text, i + 1), c = stringCharCodeAt(text, i + 2);
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
        var text = stringReplace(StringOf(input), /[\s=]/g, ''), out = '', buffer = 0, bits = 0;
        for (var i = 0; i < text.length; i++) {
            var value = stringIndexOf(B64, text[i]);
            if (value < 0) { throw new Error('InvalidCharacterError: atob input is not base64'); }
            buffer = (buffer << 6) | value;
            bits += 6;
            if (bits >= 8) {
                bits -= 8;
                out += stringFromCharCode((buffer >> bits) & 255);
            }
        }
        return out;
    };

    // -- console: formatted like Node's console.log, capped per script ---
    function formatValue(value, depth) {
        if (typeof value === 'string') { return depth ? jsonStringify(value) : value; }
        if (value === undefined) { return 'undefined'; }
        if (typeof value === 'function') { return '[Function' + (value.name ? ': ' + value.name : '') + ']'; }
        if (typeof value === 'bigint') { return value.toString() + 'n'; }
        if (isError(value)) { return value.stack || (value.name + ': ' + value.message); }
        if (typeof value === 'object' && value !== null) {
            try { return safeStringify(value); } catch (e) { return toStringTag(value); }
        }
        return StringOf(value);
    }

    function printLine(level, text) {
        if (consoleCapped) { return; }
        if (consoleLimit > 0 && consoleUsed + text.length > consoleLimit) {
            consoleCapped = true;
            var room = consoleLimit - consoleUsed;
            if (room > 0) { post('__console', [level, stringSlice(text, 0, room)]); }
            post('__console', ['warn', 'console output capped at ' + consoleLimit +
                ' characters for this script; the rest was dropped']);
            return;
        }
        consoleUsed += text.length;
        post('__console', [level, text]);
    }

    var consoleObject = {};
    var levels = ['log', 'info', 'warn', 'error', 'debug', 'trace'];
    for (var l = 0; l < levels.length; l++) {
        (function (level) {
            consoleObject[level] = function () {
                if (consoleCapped) { return; }
                var text = arrayJoin(arrayMap(arguments, function (v) { return formatValue(v, 0); }), ' ');
                printLine(level, text);
            };
        }(levels[l]));
    }
    consoleObject.clear = function () {};
    global.console = consoleObject;

    // -- protection of the built-ins --------------------------------------
    // Each existing property of a built-in that holds a function or an object
    // becomes a non-configurable accessor: reading it gives the built-in;
    // assigning it on the built-in itself throws a TypeError that names it;
    // assigning it on any other object (an object that inherits it, as in
    // `MyType.prototype.toString = ...`) defines an own property there, as a
    // plain assignment would. New properties stay possible
    // (`Object.prototype.utils = ...`, a common way to share helpers).
    var INTRINSICS = [
        'Object', 'Function', 'Array', 'String', 'Number', 'Boolean', 'Symbol', 'BigInt',
        'Date', 'RegExp', 'Promise', 'Map', 'Set', 'WeakMap', 'WeakSet', 'Proxy', 'Reflect',
        'JSON', 'Math', 'Atomics', 'Intl', 'ArrayBuffer', 'SharedArrayBuffer', 'DataView',
        'Error', 'AggregateError', 'EvalError', 'RangeError', 'ReferenceError', 'SyntaxError',
        'TypeError', 'URIError', 'Int8Array', 'Uint8Array', 'Uint8ClampedArray', 'Int16Array',
        'Uint16Array', 'Int32Array', 'Uint32Array', 'Float32Array', 'Float64Array',
        'BigInt64Array', 'BigUint64Array'
    ];
    var GLOBAL_FUNCTIONS = [
        'parseInt', 'parseFloat', 'isNaN', 'isFinite', 'encodeURI', 'encodeURIComponent',
        'decodeURI', 'decodeURIComponent', 'escape', 'unescape', 'queueMicrotask', 'structuredClone'
    ];
    // Data that scripts and libraries legitimately tune.
    var TUNABLE = { stackTraceLimit: true, prepareStackTrace: true, captureStackTrace: true };

    function guard(target, key, label) {
        var descriptor = getOwnPropertyDescriptor(target, key);
        if (!descriptor || !descriptor.configurable || !('value' in descriptor)) { return; }
        var value = descriptor.value;
        if (typeof value !== 'function' && (typeof value !== 'object' || value === null)) { return; }
        if (typeof key === 'string' && TUNABLE[key] === true) { return; }
        var name = label + (typeof key === 'symbol' ? '[' + StringOf(key.description) + ']' : '.' + key);
        defineProperty(target, key, {
            get: function () { return value; },
            set: function (replacement) {
                if (this === target || this === undefined || this === null) {
                    throw new TypeErrorOf('Cannot replace the built-in ' + name +
                        ': it is shared by every script of the run (add a new property instead)');
                }
                defineProperty(this, key, {
                    value: replacement, writable: true, enumerable: true, configurable: true
                });
            },
            enumerable: descriptor.enumerable,
            configurable: false
        });
    }

    // The built-ins as V8 made them, listed before the bundle runs: what the
    // bundle adds later (its own helpers on prototypes) stays replaceable.
    function listIntrinsics() {
        var found = [];
        var seen = new WeakSetOf();
        function visit(target, label) {
            if (!target || (typeof target !== 'object' && typeof target !== 'function')) { return; }
            if (weakSetHas(seen, target)) { return; }
            weakSetAdd(seen, target);
            found[found.length] = { target: target, label: label, keys: ownKeys(target) };
            var prototype = getOwnPropertyDescriptor(target, 'prototype');
            // Function.prototype is itself a function.
            if (prototype && prototype.value && (typeof prototype.value === 'object' ||
                    typeof prototype.value === 'function')) {
                visit(prototype.value, label + '.prototype');
            }
        }
        for (var i = 0; i < INTRINSICS.length; i++) { visit(global[INTRINSICS[i]], INTRINSICS[i]); }
        var getPrototypeOf = Object.getPrototypeOf;
        var arrayIterator = getPrototypeOf([][Symbol.iterator]());
        visit(getPrototypeOf(Int8Array), 'TypedArray');
        visit(arrayIterator, 'ArrayIterator.prototype');
        visit(getPrototypeOf(arrayIterator), 'Iterator.prototype');
        visit(getPrototypeOf(''[Symbol.iterator]()), 'StringIterator.prototype');
        visit(getPrototypeOf(new Map()[Symbol.iterator]()), 'MapIterator.prototype');
        visit(getPrototypeOf(new Set()[Symbol.iterator]()), 'SetIterator.prototype');
        visit(getPrototypeOf(function* () {}).prototype, 'Generator.prototype');
        visit(getPrototypeOf(async function () {}), 'AsyncFunction.prototype');
        found[found.length] = {
            target: global, label: 'globalThis', keys: INTRINSICS.concat(GLOBAL_FUNCTIONS)
        };
        return found;
    }
    var intrinsics = listIntrinsics();

    // The libraries the sandbox hands scripts are reachable only from a
    // script: a boot script leaves them in `__pmLibraries` for the host.
    function guardLibraries() {
        var libraries = global.__pmLibraries;
        delete global.__pmLibraries;
        if (libraries && libraries.JSON) {
            guard(libraries.JSON, 'parse', 'JSON');
            guard(libraries.JSON, 'stringify', 'JSON');
        }
    }

    function protect() {
        for (var i = 0; i < intrinsics.length; i++) {
            var entry = intrinsics[i];
            for (var k = 0; k < entry.keys.length; k++) { guard(entry.target, entry.keys[k], entry.label); }
        }
    }

    // -- faster random UUIDs for the sandbox's SDK objects -----------------
    // postman-collection gives every Request, Response, Script and variable
    // scope it builds a v4 UUID from the bundle's `uuid` module, which makes
    // each one with a regular-expression replace and 31 calls of
    // Math.random: a tenth of a one-line test script's time. This makes the
    // same UUIDs (version 4, variant 10xx, from Math.random) from four.
    var HEX = [];
    for (var h = 0; h < 256; h++) { HEX[h] = stringSlice((h + 256).toString(16), 1); }

    function randomWord() { return (mathRandom() * 4294967296) >>> 0; }

    function uuidV4() {
        var a = randomWord(), b = randomWord(), c = randomWord(), d = randomWord();
        return HEX[a & 255] + HEX[(a >>> 8) & 255] + HEX[(a >>> 16) & 255] + HEX[a >>> 24] + '-' +
            HEX[b & 255] + HEX[(b >>> 8) & 255] + '-' +
            HEX[((b >>> 16) & 15) | 64] + HEX[b >>> 24] + '-' +
            HEX[(c & 63) | 128] + HEX[(c >>> 8) & 255] + '-' +
            HEX[(c >>> 16) & 255] + HEX[c >>> 24] +
            HEX[d & 255] + HEX[(d >>> 8) & 255] + HEX[(d >>> 16) & 255] + HEX[d >>> 24];
    }

    function speedUpUuids() {
        var requireModule = global.require;
        if (typeof requireModule !== 'function') { return; }
        var uuid = requireModule('uuid');
        if (uuid && typeof uuid.v4 === 'function') { uuid.v4 = uuidV4; }
    }

    // -- Python's handle on the host --------------------------------------
    var dispatchIntoBundle = function (args) { applyFunction(bridge.emit, bridge, args); };
    // Large texts (response bodies) that Python hands over as strings of their
    // own rather than inside the JSON of a `send`, which names them by index
    // under a key of Python's choosing (see engine.py).
    var attachments = objectCreate(null);

    function parseWithAttachments(text, attachmentKey) {
        var parsed = jsonParse(text, function (key, value) {
            if (typeof value === 'object' && value !== null && typeof value[attachmentKey] === 'number') {
                return attachments[value[attachmentKey]];
            }
            return value;
        });
        var names = objectKeys(attachments);
        for (var i = 0; i < names.length; i++) { delete attachments[names[i]]; }
        return parsed;
    }
    __pmHost = {
        attachments: attachments,
        // Start a script: reset its console budget, and drop the timers an
        // earlier script left behind (they end with it).
        begin: function (limit) {
            arraySplice(timers, 0);
            wakeNeeded = false;
            held = false;
            consoleLimit = NumberOf(limit) || 0;
            consoleUsed = 0;
            consoleCapped = false;
        },
        // Dispatch messages into the bundle; what they cause is gathered in
        // the outbox, which `turn` reads once their promise jobs have run.
        send: function (dispatchesJson, attachmentKey) {
            held = false;
            var dispatches = attachmentKey ? parseWithAttachments(dispatchesJson, attachmentKey) :
                jsonParse(dispatchesJson);
            for (var i = 0; i < dispatches.length; i++) {
                try {
                    dispatchIntoBundle(dispatches[i]);
                } catch (error) {
                    post('__host_error', [errorToJSON(isError(error) ? error : new Error(StringOf(error)))]);
                }
            }
        },
        // One turn of the loop Python runs: unless a message gathered so far
        // needs Python first, run the timers that are due; then hand over the
        // messages gathered (their promise jobs run before the next turn,
        // which gathers what they produced). `timer` is the delay to the next
        // timer (-1: none; 0 after timers ran: turn again at once). While
        // held, no timer runs (see `held`).
        turn: function () {
            var ran = false;
            if (wakeNeeded) { held = true; }
            if (!held && timers.length && nextTimerDelay() === 0) {
                ran = true;
                try {
                    runDueTimers();
                } catch (error) {
                    post('__host_error', [errorToJSON(isError(error) ? error : new Error(StringOf(error)))]);
                }
                // A timer asked Python for something: the turns after this
                // one leave the script where it is until Python answers.
                if (wakeNeeded) { held = true; }
            }
            // What the timers posted goes with this turn: a one-line test
            // script's result comes on the second turn, not the third.
            var messages = arrayJoin(arraySplice(outbox, 0), ',');
            wakeNeeded = false;
            return '{"timer":' + (ran ? 0 : nextTimerDelay()) + ',"messages":[' + messages + ']}';
        },
        // Called once the bundle has booted. `builtins`: also guard the
        // built-ins (off only to measure what the guard costs).
        protect: function (builtins) {
            // Timers run from Python only: an Atomics.waitAsync callback
            // would run outside every time limit.
            delete Atomics.waitAsync;
            speedUpUuids();
            if (builtins) {
                protect();
                guardLibraries();
            }
        }
    };
    global.bridge = bridge;
    global.__uvm_emit = function () {};
    global.__uvm_setTimeout = global.setTimeout;
}(this));
