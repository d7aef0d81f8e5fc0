module.exports = require('./runtime-dir').teardown;
