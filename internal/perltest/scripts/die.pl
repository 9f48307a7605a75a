# die.pl SERVERS TIMEOUT: jobs whose handler dies. Gearman::Worker
# reports a die with WORK_EXCEPTION (the error, frozen with Storable)
# followed by WORK_FAIL. Gearman::Server, for which the library is
# written, forwards the exception only to clients that asked for
# exceptions and ends the job on the WORK_FAIL. A client sees a failed
# task (on_fail), or with exceptions on, the error (on_exception); the
# worker goes on serving. Each task gives up after TIMEOUT seconds.
use strict;
use warnings;
use Gearman::Client;
use Storable ();

$| = 1;
my ($servers, $timeout) = @ARGV;

sub run {
    my ($name, $client, $func, $arg) = @_;
    my $r = eval {
        $client->do_task($func => $arg, {
            timeout      => $timeout,
            on_fail      => sub { print "$name on_fail: $_[0]\n" },
            on_exception => sub {
                # A Perl worker's exception is frozen with Storable;
                # others send the text.
                my $e = eval { Storable::thaw($_[0]) };
                print "$name on_exception: ", (ref $e ? $$e : $_[0]);
            },
        });
    };
    if ($@) {
        # The first line, with NULs shown and the handle left out.
        my $err = $@ =~ s/\s+at \/.*//sr =~ s/\0/\\0/gr =~ s/H:[\w.:-]+/HANDLE/gr;
        print "$name error: $err\n";
        return;
    }
    print "$name: ", (defined $r ? $$r : "undef"), "\n";
}

my $plain = Gearman::Client->new(job_servers => [split /,/, $servers]);
run("die", $plain, die => "job 1");
my $exceptions = Gearman::Client->new(job_servers => [split /,/, $servers], exceptions => 1);
run("exceptions", $exceptions, die => "job 2");
run("after", $plain, upper => "after");
