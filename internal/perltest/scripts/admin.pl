# admin.pl SERVERS RELEASE: Gearman::Client's get_job_server_status (the
# admin "status" command) while the worker holds a background job, and
# after it finished (RELEASE, a file, exists).
use strict;
use warnings;
use Gearman::Client;
use Time::HiRes qw(sleep time);

$| = 1;
my ($servers, $release) = @ARGV;
my @servers = split /,/, $servers;
my $client = Gearman::Client->new(job_servers => [@servers]);

sub show {
    my ($when, $want) = @_;
    my $line;
    my $until = time + 20;
    while (time < $until) {
        my $status = $client->get_job_server_status->{ $servers[0] } || {};
        $line = join " ", map {
            my $f = $status->{$_};
            $f ? "$_=$f->{queued}/$f->{running}/$f->{capable}" : "$_=none";
        } qw(hold upper);
        last if $line eq $want;
        sleep 0.01;
    }
    print "$when: $line\n";
}

my $handle = $client->dispatch_background(hold => $release);
show("held", "hold=1/1/1 upper=0/0/1");
open my $f, '>', $release or die "$release: $!\n";
close $f;
show("done", "hold=0/0/1 upper=0/0/1");
