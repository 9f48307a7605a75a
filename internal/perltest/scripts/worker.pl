# worker.pl SERVERS [PREFIX [SEPARATOR]]: a Gearman::Worker serving the
# functions the interop tests call, on the comma-separated job servers,
# until it is killed. With PREFIX, the functions are registered under
# Gearman::Worker's prefix ("PREFIX\tupper", or with SEPARATOR in place
# of the tab).
use strict;
use warnings;
use GearflowTest;
use Digest::MD5 qw(md5_hex);
use Gearman::Worker;
use Time::HiRes qw(sleep time);

my ($servers, $prefix, $separator) = @ARGV;
my $worker = Gearman::Worker->new(
    job_servers => [job_servers($servers)],
    (defined $prefix    ? (prefix           => $prefix)    : ()),
    (defined $separator ? (prefix_separator => $separator) : ()),
);
my %calls;    # flaky: calls seen per key

my %functions = (
    # upper: the argument in upper case.
    upper => sub { uc $_[0]->arg },
    # sum: the length and MD5 of the argument, to check large arguments.
    sum => sub { my $arg = $_[0]->arg; length($arg) . " " . md5_hex($arg) },
    # big: N bytes counting 0..255 over and over.
    big => sub {
        my $n = $_[0]->arg;
        my $block = join '', map { chr } 0 .. 255;
        substr($block x (int($n / 256) + 1), 0, $n);
    },
    # die: the handler dies (Gearman::Worker then sends WORK_EXCEPTION
    # and WORK_FAIL).
    die => sub { die "boom: " . $_[0]->arg . "\n" },
    # fail: the handler returns undef (WORK_FAIL only).
    fail => sub { undef },
    # flaky: "KEY:N" fails the first N calls with KEY, then succeeds.
    flaky => sub {
        my ($key, $n) = split /:/, $_[0]->arg;
        my $call = ++$calls{$key};
        return undef if $call <= $n;
        "ok $key on call $call";
    },
    # status: two WORK_STATUS packets, then the result.
    status => sub {
        my $job = shift;
        $job->set_status(1, 3);
        $job->set_status(2, 3);
        "status sent";
    },
    # partial: WORK_DATA, WORK_WARNING and WORK_DATA before the result.
    partial => sub {
        my $job = shift;
        $worker->send_work_data($job, "part 1");
        $worker->send_work_warning($job, "careful");
        $worker->send_work_data($job, "part 2");
        "whole";
    },
    # hold: status 1/2, then waits (at most 30 s) for the file named by
    # the argument before it completes.
    hold => sub {
        my $job = shift;
        $job->set_status(1, 2);
        my $until = time + 30;
        sleep 0.02 while !-e $job->arg && time < $until;
        -e $job->arg ? "released" : undef;
    },
    # sleep: sleeps the argument's seconds.
    sleep => sub { sleep $_[0]->arg; "slept " . $_[0]->arg },
);
# register_function is false when a job server is down; the worker
# registers there when it connects.
$worker->register_function($_ => $functions{$_}) for sort keys %functions;
# slow: sleeps the argument's seconds, registered with a timeout of 1
# (CAN_DO_TIMEOUT "slow\01"): Gearman::Server fails a job that takes
# longer after 1 second (gearmand reads the value as milliseconds, and
# waits at least 1000).
$worker->register_function(slow => 1, sub { sleep $_[0]->arg; "slept " . $_[0]->arg });
$worker->work(stop_if => sub { 0 });
